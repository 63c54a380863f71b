//! Display the current date with `call_later` (asyncio reference 18.5.1.18.2): a callback prints
//! the date and time, then reschedules itself a second later, for five seconds, then stops the
//! loop.

use std::time::{SystemTime, UNIX_EPOCH};

use evloop::EventLoop;

fn display_date(end_time: f64, lp: EventLoop) {
    println!("{}", now_utc());
    if lp.time() + 1.0 < end_time {
        let l2 = lp.clone();
        if let Err(err) = lp.call_later(1.0, move || display_date(end_time, l2)) {
            eprintln!("cannot reschedule: {err}");
            lp.stop();
        }
    } else {
        lp.stop();
    }
}

fn main() -> std::io::Result<()> {
    let lp = EventLoop::new()?;
    // Schedule the first call to display_date().
    let end_time = lp.time() + 5.0;
    let l2 = lp.clone();
    lp.call_soon(move || display_date(end_time, l2))?;
    // Blocking call interrupted by stop().
    lp.run_forever()?;
    lp.close()?;
    Ok(())
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS.micros`, like Python's `datetime.now()`.
fn now_utc() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard Hinnant's
/// published `civil_from_days` algorithm: eras of 400 years, March-based years.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
