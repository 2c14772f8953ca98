//! What the broker knows about each simulation server, and the pure rules over it: the
//! last load (`Load`: `Unpolled` until the server's first poll result, `Down` for a server
//! that did not answer a number), recent history, which
//! server `/session` picks (by `load / weight`, among the servers that allow the asked
//! repository), the mean for `/load`, and which change of load is worth a mail
//! (`Transition`). No I/O here: `broker.rs` feeds poll results in.

use std::collections::VecDeque;

use crate::spec::ServerSpec;

/// A server's last known load, in percent.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// No poll result yet (the first round is under way): never handed out, not counted
    /// in `/load`.
    Unpolled,
    Up(f64),
    /// It did not answer with a number; why (refused, timeout, HTTP 500, ...).
    Down(String),
}

impl Load {
    pub fn value(&self) -> Option<f64> {
        match self {
            Load::Up(l) => Some(*l),
            Load::Unpolled | Load::Down(_) => None,
        }
    }

    /// Up and strictly below `max`: may be handed out.
    pub fn is_available(&self, max: f64) -> bool {
        self.value().is_some_and(|l| l < max)
    }
}

/// A change of load the administrator hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    NotResponding,
    WorkingAgain,
    ReachedMaxLoad,
    AvailableAgain,
}

impl Transition {
    /// The mail subject, word for word as Webots sends it.
    pub fn subject(self) -> &'static str {
        match self {
            Transition::NotResponding => "Simulation server not responding",
            Transition::WorkingAgain => "Simulation server working again",
            Transition::ReachedMaxLoad => "Simulation server reached maximum load",
            Transition::AvailableAgain => "Simulation server available again",
        }
    }
}

/// Webots' rules: up → down, down → up (whatever the load), crossing `max` upward,
/// crossing it downward. Anything else (down → down, small changes) is quiet. A server's
/// first result counts from load 0, as Webots starts every server at 0: down at start-up
/// is mailed as not responding, loaded at start-up as having reached the maximum.
pub fn transition(before: &Load, after: &Load, max: f64) -> Option<Transition> {
    let zero = Load::Up(0.0);
    let before = if *before == Load::Unpolled {
        &zero
    } else {
        before
    };
    match (before, after) {
        (Load::Up(_), Load::Down(_)) => Some(Transition::NotResponding),
        (Load::Down(_), Load::Up(_)) => Some(Transition::WorkingAgain),
        (Load::Up(b), Load::Up(a)) if *b < max && *a >= max => Some(Transition::ReachedMaxLoad),
        (Load::Up(b), Load::Up(a)) if *b >= max && *a < max => Some(Transition::AvailableAgain),
        _ => None,
    }
}

/// One simulation server as the broker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    /// As written in the config, e.g. `localhost:2000` or `host.example.org/2000`.
    pub entry: String,
    /// From the config (`ServerSpec`): selection compares `load / weight`.
    pub weight: u32,
    /// From the config: the repositories it may run (`None`: any).
    pub allowed_repositories: Option<Vec<String>>,
    /// `Unpolled` until the first poll result for this server arrives.
    pub load: Load,
    /// The last samples, oldest first; `None` for a poll that found the server down.
    pub history: VecDeque<Option<f64>>,
}

impl ServerState {
    /// Weight 1, any repository.
    pub fn new(entry: &str) -> ServerState {
        ServerState::from_spec(&ServerSpec::new(entry))
    }

    pub fn from_spec(spec: &ServerSpec) -> ServerState {
        ServerState {
            entry: spec.entry.clone(),
            weight: spec.weight.max(1),
            allowed_repositories: spec.allowed_repositories.clone(),
            load: Load::Unpolled,
            history: VecDeque::new(),
        }
    }

    /// May it run the repository at `url`? (`ServerSpec::allows`.)
    pub fn allows(&self, url: &str) -> bool {
        crate::spec::allows(self.allowed_repositories.as_deref(), url)
    }

    /// What selection compares: the load divided by the weight.
    pub fn score(&self) -> Option<f64> {
        self.load.value().map(|l| l / f64::from(self.weight.max(1)))
    }

    /// Take a poll result; keep at most `keep` samples. Returns the transition, if any.
    pub fn record(&mut self, load: Load, max: f64, keep: usize) -> Option<Transition> {
        let t = transition(&self.load, &load, max);
        if self.history.len() >= keep.max(1) {
            self.history.pop_front();
        }
        self.history.push_back(load.value());
        self.load = load;
        t
    }
}

/// The server `/session` hands out: among the servers up and strictly below `max` (the
/// raw load: the weight never lets a server past it), the lowest `load / weight`; on a
/// tie the first in the list. `None` when every server is down or loaded.
pub fn pick(servers: &[ServerState], max: f64) -> Option<&ServerState> {
    pick_for(servers, max, None)
}

/// `pick` among the servers that allow the repository at `url` (`None`: every server).
pub fn pick_for<'a>(
    servers: &'a [ServerState],
    max: f64,
    url: Option<&str>,
) -> Option<&'a ServerState> {
    let mut best: Option<(&ServerState, f64)> = None;
    for s in servers {
        if !s.load.is_available(max) || url.is_some_and(|u| !s.allows(u)) {
            continue;
        }
        let Some(score) = s.score() else { continue };
        let better = match best {
            None => true,
            Some((_, b)) => score < b, // strict: the first of equals stays
        };
        if better {
            best = Some((s, score));
        }
    }
    best.map(|(s, _)| s)
}

/// The mean load of the servers that answer; `None` when none does.
pub fn mean_load(servers: &[ServerState]) -> Option<f64> {
    let loads: Vec<f64> = servers.iter().filter_map(|s| s.load.value()).collect();
    if loads.is_empty() {
        return None;
    }
    Some(loads.iter().sum::<f64>() / loads.len() as f64)
}

/// A load as Webots' session server writes it on `/load` and `/monitor`: Python's
/// `str(float)` (`42.0`, `45.666666666666664`).
pub fn python_load(l: f64) -> String {
    crate::pyfloat::python_str(l)
}

/// A load as text for mails, logs and `/monitor`'s average: at most two decimals, no
/// trailing zeros (`42`, `42.5`, `33.33`).
pub fn format_load(l: f64) -> String {
    let s = format!("{l:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(loads: &[Option<f64>]) -> Vec<ServerState> {
        loads
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut s = ServerState::new(&format!("h:{i}"));
                s.load = l.map_or(Load::Down("refused".into()), Load::Up);
                s
            })
            .collect()
    }

    #[test]
    fn pick_lowest_first_on_tie_below_max() {
        let s = servers(&[Some(50.0), Some(20.0), Some(20.0), None]);
        assert_eq!(pick(&s, 95.0).map(|s| s.entry.as_str()), Some("h:1"));
        let s = servers(&[Some(95.0), None, Some(99.0)]);
        assert!(pick(&s, 95.0).is_none());
        let s = servers(&[Some(95.0), Some(94.99)]);
        assert_eq!(pick(&s, 95.0).map(|s| s.entry.as_str()), Some("h:1"));
    }

    #[test]
    fn weight_divides_the_load_but_not_the_max() {
        let mut s = servers(&[Some(40.0), Some(60.0), Some(96.0)]);
        s[1].weight = 2; // 30
        s[2].weight = 10; // 9.6, but at or above the max
        assert_eq!(pick(&s, 95.0).map(|s| s.entry.as_str()), Some("h:1"));
        s[1].load = Load::Up(80.0); // 40: a tie with h:0, the first stays
        assert_eq!(pick(&s, 95.0).map(|s| s.entry.as_str()), Some("h:0"));
        s[1].load = Load::Up(90.0); // 45
        assert_eq!(pick(&s, 95.0).map(|s| s.entry.as_str()), Some("h:0"));
    }

    #[test]
    fn pick_for_a_repository() {
        let mut s = servers(&[Some(50.0), Some(10.0), Some(70.0)]);
        s[0].allowed_repositories = Some(vec!["https://github.com/cyberbotics/".into()]);
        s[1].allowed_repositories = Some(vec!["https://github.com/acme/".into()]);
        let name =
            |url: Option<&str>, s: &[ServerState]| pick_for(s, 95.0, url).map(|s| s.entry.clone());
        assert_eq!(name(None, &s), Some("h:1".into()));
        assert_eq!(
            name(Some("https://github.com/cyberbotics/webots/w.wbt"), &s),
            Some("h:0".into())
        );
        assert_eq!(
            name(Some("https://github.com/acme/x/w.wbt"), &s),
            Some("h:1".into())
        );
        assert_eq!(
            name(Some("https://gitlab.com/x/w.wbt"), &s),
            Some("h:2".into())
        );
        assert_eq!(
            name(Some("https://github.com/acme/../cyberbotics/w.wbt"), &s),
            Some("h:2".into()),
            "a dot segment matches no list"
        );
        s[2].load = Load::Up(99.0);
        assert_eq!(name(Some("https://gitlab.com/x/w.wbt"), &s), None);
        s[0].load = Load::Down("refused".into());
        assert_eq!(name(Some("https://github.com/cyberbotics/w.wbt"), &s), None);
    }

    #[test]
    fn transitions_follow_webots() {
        let up = |l| Load::Up(l);
        let down = || Load::Down("x".into());
        assert_eq!(
            transition(&up(0.0), &down(), 95.0),
            Some(Transition::NotResponding)
        );
        assert_eq!(
            transition(&down(), &up(99.0), 95.0),
            Some(Transition::WorkingAgain)
        );
        assert_eq!(
            transition(&up(10.0), &up(95.0), 95.0),
            Some(Transition::ReachedMaxLoad)
        );
        assert_eq!(
            transition(&up(96.0), &up(94.0), 95.0),
            Some(Transition::AvailableAgain)
        );
        assert_eq!(transition(&down(), &down(), 95.0), None);
        assert_eq!(transition(&up(10.0), &up(20.0), 95.0), None);
        assert_eq!(transition(&up(96.0), &up(97.0), 95.0), None);
    }

    #[test]
    fn unpolled_is_never_picked_nor_averaged_and_counts_from_zero() {
        let mut s = servers(&[Some(50.0), Some(20.0)]);
        s[1].load = Load::Unpolled;
        assert_eq!(pick(&s, 95.0).map(|s| s.entry.as_str()), Some("h:0"));
        assert_eq!(mean_load(&s), Some(50.0));
        s[0].load = Load::Unpolled;
        assert!(pick(&s, 95.0).is_none());
        assert_eq!(mean_load(&s), None);
        let down = Load::Down("refused".into());
        let u = Load::Unpolled;
        assert_eq!(transition(&u, &down, 95.0), Some(Transition::NotResponding));
        assert_eq!(
            transition(&u, &Load::Up(97.0), 95.0),
            Some(Transition::ReachedMaxLoad)
        );
        assert_eq!(transition(&u, &Load::Up(10.0), 95.0), None);
        assert_eq!(ServerState::new("h:1").load, Load::Unpolled);
    }

    #[test]
    fn history_is_bounded() {
        let mut s = ServerState::new("h:1");
        for i in 0..5 {
            s.record(Load::Up(i as f64), 95.0, 3);
        }
        s.record(Load::Down("x".into()), 95.0, 3);
        assert_eq!(s.history, VecDeque::from(vec![Some(3.0), Some(4.0), None]));
    }

    #[test]
    fn mean_and_format() {
        assert_eq!(
            mean_load(&servers(&[Some(10.0), None, Some(30.0)])),
            Some(20.0)
        );
        assert_eq!(mean_load(&servers(&[None])), None);
        assert_eq!(format_load(42.0), "42");
        assert_eq!(format_load(42.5), "42.5");
        assert_eq!(format_load(100.0 / 3.0), "33.33");
        assert_eq!(format_load(-0.001), "0");
        assert_eq!(format_load(-1.0), "-1");
    }
}
