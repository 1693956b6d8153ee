package web

// DeviceName is deviceName, for the table test in package web_test.
var DeviceName = deviceName

// CookieAttributes is cookieAttributes, for TestDBSCCookieAttributes.
var CookieAttributes = cookieAttributes
