// Package profile is the registry of compliance profiles: what the whole
// log needs to know of a profile, its name, its title and the retention
// floor it requires with the floor's legal basis. The profiles themselves,
// their controls and parameters, are package compliance's, one file each;
// compliance registers each here when a program links it. Retention (the
// floors), the server's --compliance check, the console and the help texts
// read the names and floors from here, so a profile is named in its own
// file and in compliance's registry, and nowhere else. No I/O.
package profile

import (
	"fmt"
	"strings"
	"sync"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/period"
)

// Profile is a compliance profile as the log knows it.
type Profile struct {
	// Name names the profile in flags, configuration files, the
	// retention.set events and the report URLs (/v1/reports/NAME): an id
	// (event.ValidID).
	Name string
	// Title is the regulation the profile stands for, as reports show it.
	Title string
	// Floor is the retention floor the profile requires: records of a
	// tenant under the profile are not erased inside it unless the erasure
	// records an override. The zero Period requires none.
	Floor period.Period
	// Basis cites the rule the floor comes from.
	Basis string
}

var (
	mu       sync.RWMutex
	profiles []Profile
)

// Register adds p to the registry; call it from an init function (or a
// package-level variable's initialization) only. It panics if p's name is
// not an id, if it has no title, or if its name is taken.
func Register(p Profile) {
	if !event.ValidID(p.Name) || p.Title == "" {
		panic(fmt.Sprintf("profile: profile %q needs an id for a name and a title", p.Name))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, q := range profiles {
		if q.Name == p.Name {
			panic(fmt.Sprintf("profile: profile %q registered twice", p.Name))
		}
	}
	profiles = append(profiles, p)
}

// All are the registered profiles, in the order of registration.
func All() []Profile {
	mu.RLock()
	defer mu.RUnlock()
	return append([]Profile(nil), profiles...)
}

// Names are the registered profiles' names, in the order of registration.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, len(profiles))
	for i, p := range profiles {
		out[i] = p.Name
	}
	return out
}

// Lookup is the profile registered as name.
func Lookup(name string) (Profile, bool) {
	mu.RLock()
	defer mu.RUnlock()
	for _, p := range profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// UnknownError is the error about a name no profile is registered as.
type UnknownError struct {
	Name string
	// Registered are the names registered when the error was made.
	Registered []string
}

// Unknown is the error about name, which no profile is registered as.
func Unknown(name string) *UnknownError {
	return &UnknownError{Name: name, Registered: Names()}
}

func (e *UnknownError) Error() string {
	if len(e.Registered) == 0 {
		return fmt.Sprintf("unknown compliance profile %q (no profile is registered: the program does not link package compliance)", e.Name)
	}
	return fmt.Sprintf("unknown compliance profile %q (registered: %s)", e.Name, strings.Join(e.Registered, ", "))
}
