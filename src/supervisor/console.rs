//! The console: when the master's stdin is a terminal, each line typed is a command for the
//! master's loop: `status`, `restart`, `reload`, `exit` (stops tether and its worker,
//! nothing else). Anything else prints the list.

use std::io::BufRead;
use std::sync::mpsc::Sender;

use super::Event;

/// The commands, for the help line.
pub const HELP: &str = "commands: status, restart, reload, exit";

/// Read commands from stdin if it is a terminal.
pub fn start(events: Sender<Event>) -> std::io::Result<()> {
    // SAFETY: isatty has no preconditions.
    if unsafe { libc::isatty(0) } != 1 {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                let cmd = line.trim().to_ascii_lowercase();
                if cmd.is_empty() {
                    continue;
                }
                if events.send(Event::Console(cmd)).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
