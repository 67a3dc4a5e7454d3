package capture

import (
	"encoding/json"
	"net/http"
)

// writeProviderError answers an error of the proxy's own in the format the
// agent's SDK parses:
//
//	OpenAI:    {"error":{"message":...,"type":...,"param":null,"code":...}}
//	Anthropic: {"type":"error","error":{"type":...,"message":...}}
func writeProviderError(w http.ResponseWriter, flavor string, status int, code, message string) {
	var body any
	if flavor == flavorAnthropic {
		type detail struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		}
		body = struct {
			Type  string `json:"type"`
			Error detail `json:"error"`
		}{"error", detail{anthropicErrorType(status), message}}
	} else {
		typ := "invalid_request_error"
		if status >= 500 {
			typ = "server_error"
		}
		type detail struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		}
		body = struct {
			Error detail `json:"error"`
		}{detail{message, typ, nil, code}}
	}
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	w.Write(b)
}

// anthropicErrorType maps a status to Anthropic's error types
// (https://docs.anthropic.com/en/api/errors).
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}
