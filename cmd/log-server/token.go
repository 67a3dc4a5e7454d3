package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/server"
)

var tokenSynopsis = map[string]string{
	"create": "log-server token create --data DIR --name NAME [--tenant T] [--scopes S,...] [--global] [--actor ID]...",
	"revoke": "log-server token revoke --data DIR --id ID",
	"list":   "log-server token list --data DIR",
}

func tokenCmd(args []string) int {
	if len(args) == 0 || tokenSynopsis[args[0]] == "" {
		fmt.Fprintf(os.Stderr, "Usage:\n  %s\n  %s\n  %s\n", tokenSynopsis["create"], tokenSynopsis["revoke"], tokenSynopsis["list"])
		return cli.ExitUsage
	}
	sub := args[0]
	fs := cli.NewFlagSet("log-server token "+sub, tokenSynopsis[sub])
	dataDir := fs.String("data", defaultDataDir, "data directory")
	dbDSN := fs.String("db-dsn", "", "the database of an s3-storage log, user:pass@tcp(HOST:3306)/NAME, instead of DATA/state.db (default: $"+dsnEnv+")")
	var name, tenant, scopes, id *string
	var global *bool
	var actors listFlag
	switch sub {
	case "create":
		name = fs.String("name", "", "token name (required; 1-128 characters of [A-Za-z0-9_.:@-])")
		tenant = fs.String("tenant", server.DefaultTenant, "tenant the token acts for")
		scopes = fs.String("scopes", "write", "comma-separated scopes: "+strings.Join(auth.Scopes(), ", "))
		global = fs.Bool("global", false, "act for every tenant (a log operator or log-wide auditor; needed to read entry bundles)")
		fs.Var(&actors, "actor", "an actor id the token may write as (repeatable; default: any)")
	case "revoke":
		id = fs.String("id", "", "token id (required)")
	}
	if code, ok := cli.Parse(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.Fail(fs, "unexpected argument %q", fs.Arg(0))
	}
	var sc []string
	switch sub {
	case "create":
		var err error
		if sc, err = auth.ParseScopes(*scopes); err != nil {
			return cli.Fail(fs, "%v", err)
		}
		if *name == "" {
			return cli.Fail(fs, "--name is required")
		}
	case "revoke":
		if *id == "" {
			return cli.Fail(fs, "--id is required")
		}
	}
	var spec auth.Spec
	if sub == "create" {
		spec = auth.Spec{Name: *name, Tenant: *tenant, Scopes: sc, Global: *global, Actors: actors}
	}
	if *dbDSN == "" {
		*dbDSN = os.Getenv(dsnEnv)
	}
	return exit(runToken(sub, *dataDir, *dbDSN, spec, id))
}

func runToken(sub, dataDir, dsn string, spec auth.Spec, id *string) error {
	ctx := context.Background()
	db, err := backend.OpenState(ctx, dataDir, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := auth.Open(db)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		tok, p, err := store.Create(ctx, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "created token id=%s name=%s tenant=%s scopes=%s%s (shown once; store it now)\n", p.ID, p.Name, p.Tenant, strings.Join(p.Scopes, ","), tokenFlags(p))
		fmt.Println(tok)
	case "revoke":
		if err := store.Revoke(ctx, *id); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "revoked %s (effective within %s)\n", *id, auth.CacheTTL)
	case "list":
		ps, err := store.List(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			fmt.Printf("%s\t%s\t%s\t%s%s\n", p.ID, p.Name, p.Tenant, strings.Join(p.Scopes, ","), tokenFlags(&p))
		}
	}
	return nil
}

// tokenFlags describes a token's reach beyond its tenant and scopes.
func tokenFlags(p *auth.Principal) string {
	var b strings.Builder
	if p.Global {
		b.WriteString(" global")
	}
	if len(p.Actors) > 0 {
		b.WriteString(" actors=" + strings.Join(p.Actors, ","))
	}
	return b.String()
}
