//! A connection's future that any thread may poll, not only the task that owns it.
//!
//! A binding's thread (JavaScript's, Python's, a C event loop's) that writes a message
//! into an idle stream would otherwise have to wake a runtime thread to put it on the
//! socket: one thread hand-off per message, which is most of a ping-pong round trip on a
//! busy machine. Instead that thread "kicks" the connection: it polls it once itself, so
//! the frame leaves from the thread that made it. The owning task still drives everything
//! else (reads, timers, flow control); the two never poll at once.
//!
//! The futures inside the connection (sockets, h2's streams) see one waker, `Notify`. A
//! wake that arrives while a kick is announced does not wake the task: the kicker polls
//! after it, or, when it cannot take the connection, wakes the task itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use tokio::runtime::Handle;

type Conn = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(crate) struct Driver {
    /// `None` once the connection's future has completed.
    conn: Mutex<Option<Conn>>,
    notify: Arc<Notify>,
    waker: Waker,
    rt: Handle,
}

/// Kept apart from `Driver` so that the wakers the connection stores do not keep the
/// connection itself alive (a cycle).
struct Notify {
    /// Something inside the connection asked to be polled since its last poll began.
    notified: AtomicBool,
    /// Threads that announced a kick and have not finished it.
    kickers: AtomicUsize,
    task: Mutex<Option<Waker>>,
}

impl Notify {
    fn wake_task(&self) {
        let w = self.task.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Ordering::SeqCst);
        if self.kickers.load(Ordering::SeqCst) == 0 {
            self.wake_task();
        }
    }
}

pub(crate) struct Closer(Arc<Driver>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// An announced kick: wakes from the connection are held back until `finish`.
pub(crate) struct Kick {
    driver: Arc<Driver>,
    done: bool,
}

impl Driver {
    pub(crate) fn new(conn: impl Future<Output = ()> + Send + 'static, rt: Handle) -> Arc<Driver> {
        let notify = Arc::new(Notify {
            notified: AtomicBool::new(false),
            kickers: AtomicUsize::new(0),
            task: Mutex::new(None),
        });
        Arc::new(Driver {
            conn: Mutex::new(Some(Box::pin(conn))),
            waker: Waker::from(notify.clone()),
            notify,
            rt,
        })
    }

    /// As `new`, for a connection future that needs (a weak reference to) its own driver.
    pub(crate) fn new_cyclic<F>(conn: impl FnOnce(Weak<Driver>) -> F, rt: Handle) -> Arc<Driver>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let notify = Arc::new(Notify {
            notified: AtomicBool::new(false),
            kickers: AtomicUsize::new(0),
            task: Mutex::new(None),
        });
        Arc::new_cyclic(|me| Driver {
            conn: Mutex::new(Some(Box::pin(conn(me.clone())))),
            waker: Waker::from(notify.clone()),
            notify,
            rt,
        })
    }

    /// The owning task's side: polls the connection, or leaves it to a kicker that holds
    /// it (which wakes the task if anything is left to do). Ready once the connection ended.
    pub(crate) fn poll_task(&self, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut t = self.notify.task.lock().unwrap_or_else(|p| p.into_inner());
            match &*t {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *t = Some(cx.waker().clone()),
            }
        }
        let Ok(mut conn) = self.conn.try_lock() else {
            // A kicker is polling; it wakes the task if a wake arrived meanwhile.
            self.notify.notified.store(true, Ordering::SeqCst);
            return Poll::Pending;
        };
        if self.poll_once(&mut conn) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The runtime's context, for a poll from a thread outside it.
    pub(crate) fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.rt.enter()
    }

    /// Drops the connection's future now (closing its socket and failing its streams), as
    /// dropping the task that owned it did before anyone else could hold it.
    pub(crate) fn close(&self) {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(conn);
    }

    /// A guard for the owning task: when the task ends or is aborted, so does the connection.
    pub(crate) fn closer(self: &Arc<Self>) -> Closer {
        Closer(self.clone())
    }

    /// Announces a kick: call before the write that makes the connection need a poll, so
    /// the wake that write causes does not also wake the task.
    pub(crate) fn announce(self: Arc<Self>) -> Kick {
        self.notify.kickers.fetch_add(1, Ordering::SeqCst);
        Kick {
            driver: self,
            done: false,
        }
    }

    /// Polls once; true when the connection has ended.
    fn poll_once(&self, conn: &mut Option<Conn>) -> bool {
        let Some(fut) = conn.as_mut() else {
            return true;
        };
        self.notify.notified.store(false, Ordering::SeqCst);
        let mut cx = Context::from_waker(&self.waker);
        if fut.as_mut().poll(&mut cx).is_ready() {
            // Dropping the future drops every waker it stored.
            *conn = None;
            return true;
        }
        false
    }
}

impl Kick {
    /// Polls the connection on this thread if nobody else is, then hands anything left
    /// over to the owning task.
    pub(crate) fn finish(mut self) {
        self.run();
    }

    fn run(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let d = &*self.driver;
        let mut ended = false;
        if let Ok(mut conn) = d.conn.try_lock() {
            // The connection may spawn tasks or start timers (a server dispatching a new
            // call): give it the runtime's context on this foreign thread.
            let _rt = d.rt.enter();
            ended = d.poll_once(&mut conn);
        }
        d.notify.kickers.fetch_sub(1, Ordering::SeqCst);
        if ended || d.notify.notified.load(Ordering::SeqCst) {
            d.notify.wake_task();
        }
    }
}

impl Drop for Kick {
    fn drop(&mut self) {
        // An announced kick that was not finished (an early return) must not leave wakes
        // held back.
        if !self.done {
            self.done = true;
            let n = &self.driver.notify;
            n.kickers.fetch_sub(1, Ordering::SeqCst);
            if n.notified.load(Ordering::SeqCst) {
                n.wake_task();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A future that counts its polls and stays pending until told to finish.
    struct Probe {
        polls: Arc<AtomicUsize>,
        finish: Arc<AtomicBool>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.finish.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                // Ask to be polled again, as h2 does when it has more to write.
                if self.polls.load(Ordering::SeqCst) == 1 {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn a_kick_polls_on_the_calling_thread_and_the_task_sees_the_end() {
        let polls = Arc::new(AtomicUsize::new(0));
        let finish = Arc::new(AtomicBool::new(false));
        let d = Driver::new(
            Probe {
                polls: polls.clone(),
                finish: finish.clone(),
            },
            Handle::current(),
        );
        let task = {
            let d = d.clone();
            tokio::spawn(async move { std::future::poll_fn(|cx| d.poll_task(cx)).await })
        };
        // Let the task poll (and re-poll after its own wake).
        while polls.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let before = polls.load(Ordering::SeqCst);
        let d2 = d.clone();
        std::thread::spawn(move || d2.announce().finish())
            .join()
            .unwrap();
        assert_eq!(
            polls.load(Ordering::SeqCst),
            before + 1,
            "the kick polled once"
        );
        finish.store(true, Ordering::SeqCst);
        let d3 = d.clone();
        std::thread::spawn(move || d3.announce().finish())
            .join()
            .unwrap();
        // The kicker saw the end; the task must learn it too and complete.
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the task ended")
            .unwrap();
    }
}
