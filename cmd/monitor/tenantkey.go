package main

import (
	"bytes"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// Help of the --tenant-key flags: the file of monitor verify's, and of
// report's and verify-report's (which need the log-wide key too).
const (
	tenantKeyAnswerHelp = "the JSON answer of GET /v1/tenant-key (the tenant's key and the log-wide key, log_key)"
	tenantKeyHelp       = tenantKeyAnswerHelp + ", or the tenant's key alone in hex (then the log-wide records are not checked)"
)

// tenantKeys reads a --tenant-key file: the answer of GET /v1/tenant-key
// (key and log_key), or a tenant key in hex (log is nil then).
func tenantKeys(path string) (tenant, log *event.TenantKey, err error) {
	tenant, log, _, err = tenantKeysOf(path)
	return tenant, log, err
}

// tenantKeysOf is tenantKeys, with the tenant the answer names ("" for a
// hex key).
func tenantKeysOf(path string) (tenant, log *event.TenantKey, name string, err error) {
	raw, err := cli.ReadFile(path, 64<<10)
	if err != nil {
		return nil, nil, "", err
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		var r api.TenantKeyResponse
		if err := strictjson.Unmarshal(t, &r); err != nil {
			return nil, nil, "", fmt.Errorf("%s: %v", path, err)
		}
		k, err := event.ParseTenantKey(r.Key)
		if err != nil {
			return nil, nil, "", fmt.Errorf("%s: key: %v", path, err)
		}
		l, err := event.ParseTenantKey(r.LogKey)
		if err != nil {
			return nil, nil, "", fmt.Errorf("%s: log_key: %v", path, err)
		}
		return &k, &l, r.Tenant, nil
	}
	k, err := event.ParseTenantKey(string(raw))
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %v", path, err)
	}
	return &k, nil, "", nil
}
