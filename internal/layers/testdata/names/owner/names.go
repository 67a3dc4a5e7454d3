package owner

const (
	KindFix = "fix.kind"
	AttrFix = "fix.key"
	// AttrSame has a kind's value: a kind and a key may share a value.
	AttrSame = "fix.kind"
)
