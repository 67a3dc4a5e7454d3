package log

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/identity"
)

// Attributes that name the person who caused an event, when a person
// signed in through an identity provider caused it (Reader.Person): the
// provider's issuer and the role the mapping gave them, in clear; the
// subject, which is personal data, only as the person's pseudonym in the
// event's tenant (the vault maps it, an erasure of the person destroys
// the mapping).
const (
	AttrPersonIssuer    = "person.issuer"
	AttrPersonRole      = "person.role"
	AttrPersonPseudonym = "person.pseudonym"
)

// AppendAs appends one event that r causes, as the server: written by r's
// token (or sign-in), via server, and naming the person when r is one.
// The server's own kinds and sessions are the caller's to choose.
func (l *Log) AppendAs(ctx context.Context, tenant string, r Reader, ev *event.Request) (event.Appended, error) {
	return l.serverEvent(ctx, tenant, r, ev)
}

// PersonPseudonym returns the pseudonym of a person in tenant, creating it
// if needed.
func (l *Log) PersonPseudonym(ctx context.Context, tenant string, p identity.Person) (string, error) {
	return l.vault.Pseudonym(ctx, tenant, p.Value())
}

// stampPerson names the person of r in ev: the attributes above, and, on
// an event whose actor is the reader's sign-in, the pseudonym as the
// actor's on_behalf_of (so that the session index finds the person's
// events, as it finds a data subject's).
func (l *Log) stampPerson(ctx context.Context, tenant string, r Reader, ev *event.Request) error {
	if r.Person == nil {
		return nil
	}
	ps, err := l.PersonPseudonym(ctx, tenant, *r.Person)
	if err != nil {
		return fmt.Errorf("pseudonymizing the person: %w", err)
	}
	if ev.Attributes == nil {
		ev.Attributes = map[string]json.RawMessage{}
	}
	ev.Attributes[AttrPersonIssuer] = jsonString(r.Person.Issuer)
	ev.Attributes[AttrPersonRole] = jsonString(r.Role)
	ev.Attributes[AttrPersonPseudonym] = jsonString(ps)
	if ev.Actor.Type == "human" && ev.Actor.ID == r.TokenID {
		ev.Actor.OnBehalfOf = ps
	}
	return nil
}

// serverEvent appends one event that r causes, as the server: written by
// r's token (or sign-in), via server, naming the person when r is one.
func (l *Log) serverEvent(ctx context.Context, tenant string, r Reader, ev *event.Request) (event.Appended, error) {
	if err := l.stampPerson(ctx, tenant, r, ev); err != nil {
		return event.Appended{}, fmt.Errorf("recording %s: %w", ev.Kind, err)
	}
	res, err := l.Append(ctx, tenant, r.Writer(), []*event.Request{ev})
	if err != nil {
		return event.Appended{}, fmt.Errorf("recording %s: %w", ev.Kind, err)
	}
	return res[0], nil
}
