//! One line per engine request and per RPC on stderr (the suite shows a driver's output on its
//! failure timelines), each prefixed with a wall-clock timestamp.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn line(text: &str) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let mut err = std::io::stderr().lock();
    // A closed stderr must not stop the driver.
    let _ = writeln!(
        err,
        "{h:02}:{m:02}:{s:02}.{:03} sbx-peer-driver: {text}",
        now.subsec_millis()
    );
}

#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::line(&format!($($arg)*)) };
}
