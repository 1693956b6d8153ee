package webhook

// StateKey is the key of an endpoint's progress in the store, for tests.
func StateKey(url string) string { return key(Endpoint{URL: url}) }
