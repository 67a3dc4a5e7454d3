package compliance

import (
	"fmt"
	"slices"

	"github.com/llmaudittrail/llmaudittrail/profile"
)

// registered are the compliance profiles, in the order in which reports,
// help texts and the console list them. Each profile is one file, NAME.go:
// its profile.Profile (name, title, retention floor and the floor's legal
// basis), its controls with their citations, and its parameters (a struct
// that ProfileParams embeds, with the profile's Defaults and Check).
// Adding a profile is adding its file and a line here, and a line in
// ProfileParams if it has parameters.
var registered = registerAll(
	part11,
	sox,
	euAIAct,
)

// ProfileParams are the profiles' own parameters: a struct per profile
// that has any, declared in the profile's file. Their fields are Params'
// own (in the report's JSON and the configuration's controls section),
// in this order.
type ProfileParams struct {
	Part11Params  `yaml:",inline"`
	SOXParams     `yaml:",inline"`
	EUAIActParams `yaml:",inline"`
}

// Profile is a compliance profile: what every part of the log knows of it
// (package profile: its name, title and retention floor) and its controls.
type Profile struct {
	profile.Profile
	Controls []Control
	// Defaults sets the profile's parameters in p to their defaults (nil:
	// it has none).
	Defaults func(p *Params)
	// Check reports what is wrong with the profile's parameters in p, and
	// may normalise them (nil: nothing to check).
	Check func(p *Params) error
	// Enable sets in p what a log running the profile needs in its
	// reports (nil: nothing beyond the defaults): the server records the
	// result, with the compliance configuration's overrides, in the log
	// (ParamsFor).
	Enable func(p *Params)
	// RuleParams are the monitor rule parameters (params.* of rule files)
	// a log running the profile needs (nil: none): recorded by the server
	// in the log, where the monitor reads them (RuleParamsFor).
	RuleParams map[string]any
}

// Control is one control of a profile: its id, the rule it stands for,
// and the evaluator that computes its evidence from the verified entries.
type Control struct {
	ID, Citation, Title string
	Eval                func(c *collector) ControlResult
}

// profiles are the registered profiles, in the order of registration.
var profiles []Profile

func registerAll(ps ...Profile) []Profile {
	for _, p := range ps {
		register(p)
	}
	return ps
}

// register registers p with package profile, and its controls with the
// reports. Call it only while the package is initialized (a package-level
// variable, or an init function of a test). It panics if p has no
// controls, if a control has no id or evaluator or shares its id, or if
// profile.Register does.
func register(p Profile) {
	if len(p.Controls) == 0 {
		panic(fmt.Sprintf("compliance: profile %q has no controls", p.Name))
	}
	ids := map[string]bool{}
	for _, c := range p.Controls {
		if c.ID == "" || c.Eval == nil || ids[c.ID] {
			panic(fmt.Sprintf("compliance: profile %q: control %q needs a unique id and an evaluator", p.Name, c.ID))
		}
		ids[c.ID] = true
	}
	profile.Register(p.Profile)
	profiles = append(profiles, p)
}

// Profiles are the registered profiles, in the order of registration.
func Profiles() []Profile { return slices.Clone(profiles) }

// ProfileNames lists the registered profiles' names.
func ProfileNames() []string {
	out := make([]string, 0, len(profiles))
	for _, p := range profiles {
		out = append(out, p.Name)
	}
	return out
}

func profileByName(name string) (Profile, bool) {
	for _, p := range profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}
