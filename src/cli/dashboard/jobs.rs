//! Actions started from the panel (a rollback): their progress lines and
//! outcome, kept for the page that streams them.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Job {
    pub what: String,
    lines: Mutex<Vec<String>>,
    /// `ok`, or `failed`.
    done: Mutex<Option<&'static str>>,
    changed: Notify,
}

impl Job {
    pub fn push(&self, line: String) {
        self.lines.lock().expect("job lock").push(line);
        self.changed.notify_waiters();
    }

    pub fn finish(&self, ok: bool, error: Option<String>) {
        if let Some(e) = error {
            self.lines.lock().expect("job lock").push(e);
        }
        *self.done.lock().expect("job lock") = Some(if ok { "ok" } else { "failed" });
        self.changed.notify_waiters();
    }

    /// The lines from `from` on, and the outcome once there is one.
    pub fn since(&self, from: usize) -> (Vec<String>, Option<&'static str>) {
        let lines = self.lines.lock().expect("job lock");
        let done = *self.done.lock().expect("job lock");
        (lines.get(from..).unwrap_or_default().to_vec(), done)
    }

    /// Wait for a change (or a while: a change between a look and this wait
    /// is seen at the next look).
    pub async fn changed(&self) {
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            self.changed.notified(),
        )
        .await;
    }
}

#[derive(Default)]
pub struct Jobs {
    list: Mutex<Vec<Arc<Job>>>,
}

impl Jobs {
    pub fn start(&self, what: String) -> (usize, Arc<Job>) {
        let job = Arc::new(Job {
            what,
            ..Job::default()
        });
        let mut list = self.list.lock().expect("jobs lock");
        list.push(Arc::clone(&job));
        (list.len() - 1, job)
    }

    pub fn get(&self, id: usize) -> Option<Arc<Job>> {
        self.list.lock().expect("jobs lock").get(id).cloned()
    }
}
