//! The chart: `<out-dir>/report.svg`, one bar group per benchmark, a bar per subject showing
//! its speed relative to evloop's in the same run (evloop = 1; higher is faster), drawn with
//! `plotters`' SVG backend.
//!
//! Each benchmark shows its first metric that evloop measured in a unit that says which way is
//! better: a time (`ns`, `us`, `ms`, `s`: speed is evloop's time over the subject's) or a rate
//! (`req/s`, `/s`: the subject's rate over evloop's). Other metrics (syscall counts,
//! percentages) stay in the tables.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::harness::Record;

/// Our own subject's name in every group.
const OURS: &str = "evloop";
/// Bar colours, in the order subjects first appear; evloop's is the first.
const PALETTE: [RGBColor; 12] = [
    RGBColor(0xd9, 0x48, 0x1c),
    RGBColor(0x2b, 0x6c, 0xb0),
    RGBColor(0x6a, 0x9f, 0x3a),
    RGBColor(0x8e, 0x5a, 0xa8),
    RGBColor(0xe0, 0xa1, 0x1b),
    RGBColor(0x3d, 0xa5, 0xa0),
    RGBColor(0x7a, 0x7a, 0x7a),
    RGBColor(0xb5, 0x4d, 0x80),
    RGBColor(0x1f, 0x3a, 0x5f),
    RGBColor(0x9c, 0x6b, 0x30),
    RGBColor(0x4f, 0xc1, 0xe9),
    RGBColor(0x2e, 0x2e, 0x2e),
];

/// One bar group: a benchmark, its metric, and each subject's speed relative to evloop.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bars {
    pub(crate) group: String,
    pub(crate) metric: String,
    pub(crate) speeds: Vec<(String, f64)>,
}

/// Whether a lower value of `unit` is better (a time), a higher one (a rate), or neither.
fn lower_is_better(unit: &str) -> Option<bool> {
    match unit {
        "ns" | "us" | "µs" | "ms" | "s" => Some(true),
        u if u.ends_with("/s") => Some(false),
        _ => None,
    }
}

/// The bar groups of `records`, in the order the groups first appear.
pub(crate) fn bars(records: &[Record]) -> Vec<Bars> {
    let mut groups: Vec<&str> = Vec::new();
    for r in records {
        if !groups.contains(&r.group.as_str()) {
            groups.push(&r.group);
        }
    }
    groups
        .into_iter()
        .filter_map(|group| {
            let ours = records.iter().find(|r| {
                r.group == group
                    && r.subject == OURS
                    && lower_is_better(&r.unit).is_some()
                    && r.value.is_finite()
                    && r.value > 0.0
            })?;
            let lower = lower_is_better(&ours.unit)?;
            let speeds: Vec<(String, f64)> = records
                .iter()
                .filter(|r| r.group == group && r.metric == ours.metric && r.unit == ours.unit)
                .filter(|r| r.value.is_finite() && r.value > 0.0)
                .map(|r| {
                    let speed = if lower {
                        ours.value / r.value
                    } else {
                        r.value / ours.value
                    };
                    (r.subject.clone(), speed)
                })
                .collect();
            (speeds.len() > 1).then(|| Bars {
                group: group.to_string(),
                metric: ours.metric.clone(),
                speeds,
            })
        })
        .collect()
}

/// The chart as an SVG document, titled with `caption` (date, machine, mode).
///
/// # Errors
///
/// The drawing backend's error, as text.
pub(crate) fn svg(records: &[Record], caption: &str) -> Result<String, String> {
    let groups = bars(records);
    let mut subjects: Vec<String> = Vec::new();
    for g in &groups {
        for (s, _) in &g.speeds {
            if !subjects.contains(s) {
                subjects.push(s.clone());
            }
        }
    }
    if let Some(i) = subjects.iter().position(|s| s == OURS) {
        let ours = subjects.remove(i);
        subjects.insert(0, ours);
    }
    let colour = |subject: &str| {
        let i = subjects.iter().position(|s| s == subject).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };

    const BAR: i32 = 18;
    const GAP: i32 = 26;
    const LEFT: i32 = 60;
    const TOP: i32 = 70;
    const PLOT_H: i32 = 300;
    let widths: Vec<i32> = groups
        .iter()
        .map(|g| BAR * i32::try_from(g.speeds.len()).unwrap_or(1))
        .collect();
    let plot_w: i32 = widths.iter().sum::<i32>() + GAP * i32::try_from(groups.len()).unwrap_or(0);
    let width = u32::try_from((LEFT + plot_w + 40).max(640)).unwrap_or(640);
    let height = u32::try_from(TOP + PLOT_H + 190).unwrap_or(560);
    let top_speed = groups
        .iter()
        .flat_map(|g| g.speeds.iter().map(|(_, s)| *s))
        .fold(1.0_f64, f64::max)
        .min(10.0);
    let scale = f64::from(PLOT_H) / (top_speed * 1.1);
    // A speed's height in pixels (bars above ten times evloop's are cut at the top).
    #[allow(clippy::cast_possible_truncation)]
    let y_of = |speed: f64| TOP + PLOT_H - ((speed.min(top_speed * 1.1) * scale).round() as i32);

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let title = ("sans-serif", 18).into_font();
        let small = ("sans-serif", 12).into_font();
        root.draw(&Text::new(
            "evloop beside its peers: speed relative to evloop (evloop = 1, higher is faster)",
            (LEFT, 12),
            title,
        ))
        .map_err(err)?;
        root.draw(&Text::new(caption.to_string(), (LEFT, 36), small.clone()))
            .map_err(err)?;
        // The axis and the line at 1 (evloop).
        root.draw(&PathElement::new(
            vec![(LEFT, TOP), (LEFT, TOP + PLOT_H)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        root.draw(&PathElement::new(
            vec![(LEFT, TOP + PLOT_H), (LEFT + plot_w, TOP + PLOT_H)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        let right = Pos::new(HPos::Right, VPos::Center);
        let mut tick = 0.0;
        while tick <= top_speed * 1.1 {
            let y = y_of(tick);
            root.draw(&Text::new(
                format!("{tick:.1}"),
                (LEFT - 6, y),
                TextStyle::from(small.clone()).pos(right),
            ))
            .map_err(err)?;
            let style = if (tick - 1.0).abs() < 1e-9 {
                RGBColor(0x40, 0x40, 0x40).stroke_width(1)
            } else {
                RGBColor(0xe0, 0xe0, 0xe0).stroke_width(1)
            };
            root.draw(&PathElement::new(
                vec![(LEFT, y), (LEFT + plot_w, y)],
                style,
            ))
            .map_err(err)?;
            tick += if top_speed > 4.0 { 1.0 } else { 0.5 };
        }
        // The bars, each group labelled below, rotated.
        let mut x = LEFT + GAP / 2;
        let centre = Pos::new(HPos::Center, VPos::Bottom);
        for (g, w) in groups.iter().zip(&widths) {
            for (subject, speed) in &g.speeds {
                root.draw(&Rectangle::new(
                    [(x, y_of(*speed)), (x + BAR - 3, TOP + PLOT_H)],
                    colour(subject).filled(),
                ))
                .map_err(err)?;
                root.draw(&Text::new(
                    format!("{speed:.2}"),
                    (x + (BAR - 3) / 2, y_of(*speed) - 2),
                    TextStyle::from(("sans-serif", 9).into_font()).pos(centre),
                ))
                .map_err(err)?;
                x += BAR;
            }
            let label = format!("{} ({})", g.group, g.metric);
            root.draw(&Text::new(
                label,
                (x - w / 2 - BAR / 2, TOP + PLOT_H + 8),
                ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            ))
            .map_err(err)?;
            x += GAP;
        }
        // The legend.
        let mut lx = LEFT;
        for s in &subjects {
            root.draw(&Rectangle::new(
                [(lx, 50), (lx + 12, 62)],
                colour(s).filled(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(s.clone(), (lx + 16, 50), small.clone()))
                .map_err(err)?;
            lx += 24 + i32::try_from(s.len()).unwrap_or(8) * 7;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(group: &str, subject: &str, value: f64, unit: &str) -> Record {
        Record {
            group: group.into(),
            subject: subject.into(),
            metric: "total".into(),
            value,
            unit: unit.into(),
        }
    }

    #[test]
    fn times_and_rates_both_become_speed_relative_to_evloop() {
        let records = [
            rec("tasks_1m", "evloop", 200.0, "ms"),
            rec("tasks_1m", "tokio", 400.0, "ms"),
            rec("echo", "evloop", 50_000.0, "req/s"),
            rec("echo", "uvloop", 60_000.0, "req/s"),
            rec("syscalls", "evloop", 3.0, "per_iteration"),
            rec("syscalls", "tokio", 4.0, "per_iteration"),
            rec("alone", "evloop", 1.0, "ms"),
        ];
        let got = bars(&records);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].group, "tasks_1m");
        assert_eq!(
            got[0].speeds,
            [("evloop".into(), 1.0), ("tokio".into(), 0.5)]
        );
        assert_eq!(
            got[1].speeds,
            [("evloop".into(), 1.0), ("uvloop".into(), 1.2)]
        );
    }

    #[test]
    fn the_svg_names_every_group_and_subject() -> Result<(), String> {
        let records = [
            rec("tasks_1m", "evloop", 200.0, "ms"),
            rec("tasks_1m", "tokio", 400.0, "ms"),
        ];
        let svg = svg(&records, "2026-12-07, 2 cores")?;
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for needle in [
            "tasks_1m (total)",
            "tokio",
            "evloop",
            "2026-12-07, 2 cores",
            "0.50",
        ] {
            assert!(svg.contains(needle), "no {needle:?} in the chart");
        }
        Ok(())
    }
}
