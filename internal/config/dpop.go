package config

// DPoP tunes the checking of DPoP proofs (RFC 9449) for sessions bound to a
// client's key.
type DPoP struct {
	RequireNonce bool `yaml:"require_nonce"`
}

var dpopSettings = []Setting{
	{Key: "dpop.require_nonce", Env: "TETHER_DPOP_REQUIRE_NONCE", Flag: "dpop-require-nonce", Default: "false",
		Help:  "DPoP proofs must carry this node's nonce (DPoP-Nonce), which stops a replay on another node without a store write per request; off: each proof's jti is consumed in a shared store (the embedded one needs neither)",
		field: func(c *Config) any { return &c.DPoP.RequireNonce }},
}
