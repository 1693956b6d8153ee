package web

import "strings"

// deviceName describes a user agent in a few words, such as "Firefox on
// Windows". It knows the common browsers and systems and nothing else: the
// raw string is shown beside it for everything it misses.
func deviceName(ua string) string {
	if ua == "" {
		return "Unknown device"
	}
	b, os := browserName(ua), osName(ua)
	switch {
	case b != "" && os != "":
		return b + " on " + os
	case b != "":
		return b
	case os != "":
		return "A browser on " + os
	}
	return "Unknown device"
}

// browserName tests the markers in an order that matters: Edge, Opera and
// Samsung Internet also say "Chrome", and Chrome also says "Safari".
func browserName(ua string) string {
	for _, m := range []struct{ marker, name string }{
		{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"},
		{"OPR/", "Opera"}, {"SamsungBrowser/", "Samsung Internet"},
		{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"HeadlessChrome/", "Headless Chrome"}, {"CriOS/", "Chrome"}, {"Chromium/", "Chromium"}, {"Chrome/", "Chrome"},
		{"curl/", "curl"}, {"Go-http-client/", "Go HTTP client"}, {"tether/", "Tether CLI"},
	} {
		if strings.Contains(ua, m.marker) {
			return m.name
		}
	}
	if strings.Contains(ua, "Safari/") && strings.Contains(ua, "Version/") {
		return "Safari"
	}
	return ""
}

// osName: iPhones and iPads say "like Mac OS X", Android says "Linux".
func osName(ua string) string {
	for _, m := range []struct{ marker, name string }{
		{"Windows NT", "Windows"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Android", "Android"},
		{"CrOS", "ChromeOS"}, {"Macintosh", "macOS"}, {"Mac OS X", "macOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, m.marker) {
			return m.name
		}
	}
	return ""
}
