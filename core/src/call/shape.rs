//! The shape of a call: how many messages each side sends.

/// The shape of a call: how many messages each side sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Shape {
    Unary = 0,
    ClientStreaming = 1,
    ServerStreaming = 2,
    Bidi = 3,
}

impl Shape {
    /// True when the client sends exactly one message.
    pub fn single_request(self) -> bool {
        matches!(self, Shape::Unary | Shape::ServerStreaming)
    }

    /// True when the server sends exactly one message.
    pub fn single_response(self) -> bool {
        matches!(self, Shape::Unary | Shape::ClientStreaming)
    }
}

/// The numbers every binding passes across its boundary: 0 unary, 1 client streaming,
/// 2 server streaming, 3 bidirectional.
impl TryFrom<u32> for Shape {
    type Error = crate::Error;

    fn try_from(n: u32) -> Result<Shape, crate::Error> {
        match n {
            0 => Ok(Shape::Unary),
            1 => Ok(Shape::ClientStreaming),
            2 => Ok(Shape::ServerStreaming),
            3 => Ok(Shape::Bidi),
            n => Err(crate::Error::invalid(format!(
                "call shape {n} is not one of 0 (unary), 1 (client streaming), 2 (server \
                 streaming), 3 (bidi)"
            ))),
        }
    }
}
