//! Test certificates from files: the server's identity, the client's CA.

use rillrpc::{ClientTls, ServerTls};

fn read(what: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {path:?}: {e}"))
}

pub fn server(cert_file: &str, key_file: &str) -> Result<ServerTls, String> {
    Ok(ServerTls {
        cert_pem: read("TLS certificate", cert_file)?,
        key_pem: read("TLS key", key_file)?,
        client_ca_pem: None,
    })
}

/// `ca_file` `None` trusts the system roots; `server_name` overrides the name checked
/// against the server's certificate.
pub fn client(ca_file: Option<&str>, server_name: Option<&str>) -> Result<ClientTls, String> {
    Ok(ClientTls {
        ca_pem: ca_file.map(|f| read("CA file", f)).transpose()?,
        server_name: server_name.map(str::to_owned),
        identity: None,
    })
}
