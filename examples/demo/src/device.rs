//! A short, human device label ("Chrome 131 on Linux") from a `User-Agent`, for the
//! devices list.

/// Names the browser and the operating system of a `User-Agent` header value.
///
/// ```
/// use keybound_demo::device_label;
/// let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// assert_eq!(device_label(Some(ua)), "Chrome 131 on Linux");
/// assert_eq!(device_label(None), "Unknown device");
/// ```
pub fn device_label(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|ua| !ua.trim().is_empty()) else {
        return "Unknown device".to_owned();
    };
    // Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
    let browsers = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
        ("curl/", "curl"),
    ];
    let browser = browsers.iter().find_map(|(marker, name)| {
        let at = ua.find(marker)?;
        let version: String = ua[at + marker.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some(if version.is_empty() {
            (*name).to_owned()
        } else {
            format!("{name} {version}")
        })
    });
    let systems = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ];
    let system = systems
        .iter()
        .find(|(marker, _)| ua.contains(marker))
        .map(|(_, name)| *name);
    match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser,
        (None, Some(system)) => format!("Browser on {system}"),
        (None, None) => ua.chars().filter(|c| !c.is_control()).take(40).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_common_browsers() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
                "Edge 131 on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox 133 on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari 18 on iOS",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/140.0.0.0 Safari/537.36",
                "Headless Chrome 140 on Linux",
            ),
            ("curl/8.5.0", "curl 8"),
            ("something\u{7}odd", "somethingodd"),
        ];
        for (ua, label) in cases {
            assert_eq!(device_label(Some(ua)), label, "{ua}");
        }
    }
}
