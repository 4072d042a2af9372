//! Whether a benchmark had the machine to itself, shared by the benches of
//! every crate (each includes this file with `#[path]`): issue 18 asks each
//! figure to say whether the other core was idle.

use std::time::Instant;

/// What else ran on the machine during a bench: the user CPU time of all other processes, from
/// `/proc/stat` less this process's own (`/proc/self/stat`), and the load averages. System time
/// is left out: the kernel's own threads (the file system's journal) work for this process's
/// syncs.
pub struct Machine {
    busy: u64,
    own: u64,
    at: Instant,
    load: String,
}

impl Machine {
    pub fn now() -> Machine {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // user and nice
        let busy = [0, 1].iter().filter_map(|&i| cpu.get(i)).sum();
        let own_stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after_name = own_stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<u64> = after_name
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // utime, field 14 of the line (11 after the name).
        let own = fields.get(11).copied().unwrap_or(0);
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load = load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Machine {
            busy,
            own,
            at: Instant::now(),
            load,
        }
    }

    /// Says whether the other core stayed idle since `self` (other processes used less than a
    /// tenth of a core on average).
    pub fn report(&self) -> String {
        let now = Machine::now();
        // /proc counts in clock ticks of 1/100 s.
        let others = (now.busy.saturating_sub(self.busy) as f64
            - now.own.saturating_sub(self.own) as f64)
            .max(0.0)
            / 100.0
            / now.at.duration_since(self.at).as_secs_f64();
        format!(
            "other core idle: {} (other processes used {others:.2} cores in user time on average \
             over {:.0} s; \
             load {} before, {} after)",
            if others < 0.1 { "yes" } else { "no" },
            now.at.duration_since(self.at).as_secs_f64(),
            self.load,
            now.load,
        )
    }
}
