//! The `/monitor` page: when the broker started, how many servers it manages, a table (#,
//! the server linked to its own `/monitor`, its load in % as Webots writes it (`50.0%`),
//! `N/A` when down or not polled yet, highlighted at or above the max load; its weight and allowed repositories when it has them), an average
//! row (the servers that answer), and per server the recent samples as a small inline SVG
//! sparkline. The page reloads itself every poll.

use std::fmt::Write;

use tether_http::html_escape;

use crate::state::{format_load, mean_load, python_load, Load, ServerState};

/// What the page shows.
pub(crate) struct View<'a> {
    pub started: &'a str,
    pub servers: &'a [ServerState],
    pub max_load: f64,
    pub http_scheme: &'a str,
    pub refresh_secs: u64,
    pub history: usize,
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em}\
table{border-collapse:collapse}\
th,td{border:1px solid #ccc;padding:.3em .8em;text-align:left}\
th{background:#eee}\
.high{color:#c00;font-weight:bold}\
.down{color:#c00}\
svg{vertical-align:middle}";

pub(crate) fn render(v: &View<'_>) -> String {
    let mut h = String::with_capacity(2048 + 600 * v.servers.len());
    let n = v.servers.len();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'/>\
         <meta http-equiv='refresh' content='{}'/>\
         <title>Session server monitor</title><style>{STYLE}</style></head>\n\
         <body><h1>Session server</h1>\n<p>Started on {}</p>\n\
         <p>Managing {n} simulation server{}:</p>\n\
         <table class='bordered'><thead><tr><th>#</th><th>simulation server</th>\
         <th>load</th><th>last {} polls</th></tr></thead><tbody>\n",
        v.refresh_secs.max(1),
        html_escape(v.started),
        if n == 1 { "" } else { "s" },
        v.history,
    );
    for (i, s) in v.servers.iter().enumerate() {
        let entry = html_escape(&s.entry);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><a href='{}://{entry}/monitor'>{entry}</a>{}</td>{}<td>{}</td></tr>",
            i + 1,
            v.http_scheme,
            details(s),
            server_cell(&s.load, v.max_load),
            sparkline(s, v.max_load, v.history),
        );
    }
    let _ = write!(
        h,
        "<tr class='average'><td></td><td style='text-align:right'>average:</td>{}<td></td></tr>\n\
         </tbody></table>\n</body></html>\n",
        load_cell(mean_load(v.servers), v.max_load),
    );
    h
}

/// After the server's link: its weight (when not 1) and allowed repositories (when listed).
fn details(s: &ServerState) -> String {
    let mut out = String::new();
    if s.weight != 1 {
        let _ = write!(out, " <small class='weight'>weight {}</small>", s.weight);
    }
    if let Some(list) = &s.allowed_repositories {
        let list: Vec<String> = list.iter().map(|p| html_escape(p)).collect();
        let _ = write!(
            out,
            "<br/><small class='repos'>repositories: {}</small>",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        );
    }
    out
}

/// A server's load as Webots writes it (`<td>42.0%</td>`), highlighted at or above `max`;
/// `N/A` when down, or not polled yet (then titled so).
fn server_cell(load: &Load, max: f64) -> String {
    match load {
        Load::Unpolled => "<td class='down' title='not polled yet'>N/A</td>".into(),
        Load::Down(_) => "<td class='down'>N/A</td>".into(),
        Load::Up(l) if *l >= max => format!("<td class='high'>{}%</td>", python_load(*l)),
        Load::Up(l) => format!("<td>{}%</td>", python_load(*l)),
    }
}

/// The average row's cell: `<td><b>42.5%</b></td>` (two decimals at most), highlighted at
/// or above `max`, `N/A` when no server answers.
fn load_cell(load: Option<f64>, max: f64) -> String {
    let (class, text) = match load {
        None => (" class='down'", "N/A".to_string()),
        Some(l) if l >= max => (" class='high'", format!("{}%", format_load(l))),
        Some(l) => ("", format!("{}%", format_load(l))),
    };
    format!("<td{class}><b>{text}</b></td>")
}

/// The samples as a polyline (0 % at the bottom, 100 % at the top), broken where the
/// server was down (a red tick there), with the max load as a dashed line.
fn sparkline(s: &ServerState, max: f64, slots: usize) -> String {
    const W: usize = 2; // pixels per sample
    const H: f64 = 24.0;
    let width = slots.max(1) * W;
    let y = |l: f64| 1.0 + (1.0 - l.clamp(0.0, 100.0) / 100.0) * (H - 2.0);
    let offset = slots.saturating_sub(s.history.len()); // newest sample at the right edge
    let mut out = format!(
        "<svg width='{width}' height='{H}' viewBox='0 0 {width} {H}' role='img'>\
         <title>{}</title><rect width='{width}' height='{H}' fill='#f8f8f8'/>\
         <line x1='0' x2='{width}' y1='{my:.1}' y2='{my:.1}' stroke='#c00' stroke-dasharray='2,2' stroke-width='0.5'/>",
        summary(s),
        my = y(max),
    );
    let mut segment: Vec<String> = Vec::new();
    let flush = |segment: &mut Vec<String>, out: &mut String| {
        if !segment.is_empty() {
            let _ = write!(
                out,
                "<polyline fill='none' stroke='#36c' stroke-width='1' points='{}'/>",
                segment.join(" ")
            );
            segment.clear();
        }
    };
    for (i, sample) in s.history.iter().enumerate() {
        let x = ((offset + i) * W) as f64 + W as f64 / 2.0;
        match sample {
            Some(l) => segment.push(format!("{x:.0},{:.1}", y(*l))),
            None => {
                flush(&mut segment, &mut out);
                let _ = write!(
                    out,
                    "<rect x='{}' y='{}' width='{W}' height='4' fill='#c00'/>",
                    (offset + i) * W,
                    H - 4.0
                );
            }
        }
    }
    flush(&mut segment, &mut out);
    out.push_str("</svg>");
    out
}

/// Text for the sparkline's tooltip: the samples, newest last.
fn summary(s: &ServerState) -> String {
    if s.history.is_empty() {
        return "no poll yet".into();
    }
    let samples: Vec<String> = s
        .history
        .iter()
        .map(|l| l.map_or("N/A".into(), format_load))
        .collect();
    format!("{} polls: {}", samples.len(), samples.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Load;

    fn page(servers: &[ServerState]) -> String {
        render(&View {
            started: "Sat, 21 Nov 2026 17:00:00 GMT",
            servers,
            max_load: 95.0,
            http_scheme: "http",
            refresh_secs: 5,
            history: 60,
        })
    }

    #[test]
    fn rows_na_highlight_and_average() {
        let mut a = ServerState::new("a.test:2000");
        a.record(Load::Up(40.0), 95.0, 60);
        let mut b = ServerState::new("b.test/2000");
        b.record(Load::Down("refused".into()), 95.0, 60);
        let mut c = ServerState::new("c<x>:1");
        c.record(Load::Up(97.0), 95.0, 60);
        let h = page(&[a, b, c]);
        assert!(h.contains("<p>Managing 3 simulation servers:</p>"), "{h}");
        assert!(
            h.contains("<meta http-equiv='refresh' content='5'/>"),
            "{h}"
        );
        assert!(h.contains("<tr><td>1</td><td><a href='http://a.test:2000/monitor'>a.test:2000</a></td><td>40.0%</td>"), "{h}");
        assert!(h.contains("<a href='http://b.test/2000/monitor'>b.test/2000</a></td><td class='down'>N/A</td>"), "{h}");
        assert!(
            h.contains("c&lt;x&gt;:1</a></td><td class='high'>97.0%</td>"),
            "{h}"
        );
        assert!(h.contains("average:</td><td><b>68.5%</b></td>"), "{h}");
        assert_eq!(h.matches("<svg").count(), 3);
        assert!(h.contains("fill='#c00'/>"), "down sample drawn: {h}");
    }

    #[test]
    fn weight_and_repositories_are_shown() {
        let mut a = ServerState::new("a:1");
        a.weight = 3;
        a.allowed_repositories = Some(vec!["https://github.com/<x>/".into()]);
        let h = page(&[a]);
        assert!(
            h.contains("a:1</a> <small class='weight'>weight 3</small><br/><small class='repos'>repositories: https://github.com/&lt;x&gt;/</small></td>"),
            "{h}"
        );
    }

    #[test]
    fn average_is_na_when_nobody_answers() {
        let mut a = ServerState::new("a:1");
        a.record(Load::Down("timed out".into()), 95.0, 60);
        let h = page(&[a]);
        assert!(h.contains("<p>Managing 1 simulation server:</p>"), "{h}");
        let h = page(&[ServerState::new("b:1")]);
        assert!(
            h.contains("b:1</a></td><td class='down' title='not polled yet'>N/A</td>"),
            "{h}"
        );
        assert!(
            h.contains("average:</td><td class='down'><b>N/A</b></td>"),
            "{h}"
        );
    }
}
