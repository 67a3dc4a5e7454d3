package event

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Attributes are a leaf's attributes as ParseLeaf decodes them: strings,
// booleans, json.Number for numbers and []any for arrays. Its methods read
// one attribute each and return the zero value (and false) when it is
// missing or of another type: a reader of the log never panics on what a
// writer chose to put there.
type Attributes map[string]any

// String is the string attribute k, "" if none.
func (a Attributes) String(k string) string {
	s, _ := a[k].(string)
	return s
}

// Strings is the string elements of the array attribute k (others are
// skipped), nil if none.
func (a Attributes) Strings(k string) []string {
	vs, _ := a[k].([]any)
	var out []string
	for _, v := range vs {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Bool is the boolean attribute k, false if none.
func (a Attributes) Bool(k string) bool {
	b, _ := a[k].(bool)
	return b
}

// Float is the number attribute k.
func (a Attributes) Float(k string) (float64, bool) {
	switch v := a[k].(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case float64:
		return v, true
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	case uint64:
		return float64(v), true
	}
	return 0, false
}

// Number is the number attribute k, 0 if none.
func (a Attributes) Number(k string) float64 {
	f, _ := a.Float(k)
	return f
}

// Uint is the attribute k if it is a non-negative integer.
func (a Attributes) Uint(k string) (uint64, bool) {
	switch v := a[k].(type) {
	case json.Number:
		n, err := strconv.ParseUint(string(v), 10, 64)
		return n, err == nil
	case float64:
		if v >= 0 && v < math.MaxUint64 && v == math.Trunc(v) {
			return uint64(v), true
		}
	case int64:
		return uint64(v), v >= 0
	case int:
		return uint64(v), v >= 0
	case uint64:
		return v, true
	}
	return 0, false
}

// Time is the attribute k if it is an RFC 3339 time (TimeFormat is one).
func (a Attributes) Time(k string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, a.String(k))
	return t, err == nil
}

// Attribute keys of the leaf, each named once (the signer.* and
// signature.* keys are package signature's, compliance.* package
// profile's, person.* package log's). The values are the wire format;
// gen_ai.*, error.type, server.*, url.*, http.* and network.* follow the
// OpenTelemetry semantic conventions.
const (
	AttrAccessCount   = "access.count"
	AttrAccessDetail  = "access.detail"
	AttrAccessEventID = "access.event_id"
	AttrAccessExport  = "access.export"
	AttrAccessFields  = "access.fields"
	// AttrAccessBodyFields names the fields of an event's body disclosed
	// (leaf version 4), as AttrAccessFields names the payload's.
	AttrAccessBodyFields = "access.body_fields"
	AttrAccessGlobal     = "access.global"
	AttrAccessIndex      = "access.index"
	AttrAccessMethod     = "access.method"
	AttrAccessPseudonym  = "access.pseudonym"
	AttrAccessReason     = "access.reason"
	AttrAccessScopes     = "access.scopes"
	AttrAccessSeqFrom    = "access.seq_from"
	AttrAccessSeqTo      = "access.seq_to"
	AttrAccessSession    = "access.session"
	AttrAccessSigner     = "access.signer"
	AttrAccessTenant     = "access.tenant"
	AttrAccessTokenID    = "access.token_id"
	AttrAccessTreeSize   = "access.tree_size"

	AttrCaptureAPI        = "capture.api"
	AttrCaptureAttempt    = "capture.attempt"
	AttrCaptureBodySHA256 = "capture.body.sha256"
	// AttrCaptureIndex, AttrCaptureEventID: on an llm.span reported over
	// OTLP, the index and id of the capture's llm.request of the same
	// call.
	AttrCaptureIndex               = "capture.index"
	AttrCaptureEventID             = "capture.event.id"
	AttrCaptureBodySize            = "capture.body.size"
	AttrCaptureBodyTruncated       = "capture.body.truncated"
	AttrCaptureCallID              = "capture.call.id"
	AttrCaptureDurationMS          = "capture.duration_ms"
	AttrCaptureError               = "capture.error"
	AttrCaptureFront               = "capture.front"
	AttrCaptureGapCallIDs          = "capture.gap.call_ids"
	AttrCaptureGapCount            = "capture.gap.count"
	AttrCaptureGapError            = "capture.gap.error"
	AttrCaptureGapFirstTime        = "capture.gap.first_time"
	AttrCaptureGapKinds            = "capture.gap.kinds"
	AttrCaptureGapLastTime         = "capture.gap.last_time"
	AttrCaptureLLMResponseID       = "capture.llm_response.id"
	AttrCaptureLLMResponseIndex    = "capture.llm_response.index"
	AttrCaptureLLMToolCallID       = "capture.llm_tool_call.id"
	AttrCaptureMode                = "capture.mode"
	AttrCaptureOutcome             = "capture.outcome"
	AttrCapturePayloadBytes        = "capture.payload_bytes"
	AttrCapturePayloadDropped      = "capture.payload_dropped"
	AttrCaptureReason              = "capture.reason"
	AttrCaptureRefusedReason       = "capture.refused_reason"
	AttrCaptureStream              = "capture.stream"
	AttrCaptureStreamDroppedEvents = "capture.stream.dropped_events"
	AttrCaptureStreamEvents        = "capture.stream.events"
	AttrCaptureStreamTerminated    = "capture.stream.terminated"
	AttrCaptureSystemPromptSHA256  = "capture.system_prompt.sha256"
	AttrCaptureTimeToFirstByteMS   = "capture.time_to_first_byte_ms"
	AttrCaptureToolCallID          = "capture.tool_call.id"
	AttrCaptureToolCalls           = "capture.tool_calls"
	AttrCaptureToolResultIsError   = "capture.tool_result.is_error"
	AttrCaptureToolResultSource    = "capture.tool_result.source"
	AttrCaptureTunnelBytesReceived = "capture.tunnel.bytes_received"
	AttrCaptureTunnelBytesSent     = "capture.tunnel.bytes_sent"
	AttrCaptureUpstream            = "capture.upstream"
	AttrCaptureUpstreamRequestID   = "capture.upstream.request_id"

	AttrConfigAgent        = "config.agent"
	AttrConfigModel        = "config.model"
	AttrConfigPromptSHA256 = "config.prompt_sha256"
	AttrConfigSHA256       = "config.sha256"

	AttrDecisionOutcome = "decision.outcome"
	AttrDecisionRecord  = "decision.record"

	AttrErasureFloor          = "erasure.floor"
	AttrErasureLegalBasis     = "erasure.legal_basis"
	AttrErasureOverride       = "erasure.override"
	AttrErasureOverrideReason = "erasure.override_reason"
	AttrErasurePayloads       = "erasure.payloads"
	AttrErasureReason         = "erasure.reason"
	AttrErasureSession        = "erasure.session"
	AttrErasureSessions       = "erasure.sessions"
	AttrErasureSubject        = "erasure.subject"
	AttrErasureWALTruncated   = "erasure.wal_truncated"

	AttrErrorType = "error.type"

	AttrGenAIAgentID                       = "gen_ai.agent.id"
	AttrGenAIAgentName                     = "gen_ai.agent.name"
	AttrGenAIConversationID                = "gen_ai.conversation.id"
	AttrGenAIOperationName                 = "gen_ai.operation.name"
	AttrGenAIOutputType                    = "gen_ai.output.type"
	AttrGenAIProviderName                  = "gen_ai.provider.name"
	AttrGenAIRequestChoiceCount            = "gen_ai.request.choice.count"
	AttrGenAIRequestEncodingFormats        = "gen_ai.request.encoding_formats"
	AttrGenAIRequestFrequencyPenalty       = "gen_ai.request.frequency_penalty"
	AttrGenAIRequestMaxTokens              = "gen_ai.request.max_tokens"
	AttrGenAIRequestModel                  = "gen_ai.request.model"
	AttrGenAIRequestPresencePenalty        = "gen_ai.request.presence_penalty"
	AttrGenAIRequestSeed                   = "gen_ai.request.seed"
	AttrGenAIRequestStream                 = "gen_ai.request.stream"
	AttrGenAIRequestTemperature            = "gen_ai.request.temperature"
	AttrGenAIRequestTopK                   = "gen_ai.request.top_k"
	AttrGenAIRequestTopP                   = "gen_ai.request.top_p"
	AttrGenAIResponseFinishReasons         = "gen_ai.response.finish_reasons"
	AttrGenAIResponseID                    = "gen_ai.response.id"
	AttrGenAIResponseModel                 = "gen_ai.response.model"
	AttrGenAIResponseTimeToFirstChunk      = "gen_ai.response.time_to_first_chunk"
	AttrGenAIToolCallID                    = "gen_ai.tool.call.id"
	AttrGenAIToolName                      = "gen_ai.tool.name"
	AttrGenAIToolType                      = "gen_ai.tool.type"
	AttrGenAIUsageCacheCreationInputTokens = "gen_ai.usage.cache_creation.input_tokens"
	AttrGenAIUsageCacheReadInputTokens     = "gen_ai.usage.cache_read.input_tokens"
	AttrGenAIUsageInputTokens              = "gen_ai.usage.input_tokens"
	AttrGenAIUsageOutputTokens             = "gen_ai.usage.output_tokens"
	AttrGenAIUsageReasoningOutputTokens    = "gen_ai.usage.reasoning.output_tokens"

	AttrHoldID      = "hold.id"
	AttrHoldReason  = "hold.reason"
	AttrHoldSession = "hold.session"
	AttrHoldSubject = "hold.subject"

	AttrHTTPRequestHeaderNames = "http.request.header_names"
	AttrHTTPRequestMethod      = "http.request.method"
	AttrHTTPResponseStatusCode = "http.response.status_code"

	AttrIncidentAwareAt        = "incident.aware_at"
	AttrIncidentClassification = "incident.classification"
	AttrIncidentID             = "incident.id"

	AttrJSONRPCRequestID = "jsonrpc.request.id"

	AttrMCPCapabilities     = "mcp.capabilities"
	AttrMCPDeniedReason     = "mcp.denied_reason"
	AttrMCPErrorMessage     = "mcp.error.message"
	AttrMCPIsError          = "mcp.is_error"
	AttrMCPNotifications    = "mcp.notifications"
	AttrMCPPromptName       = "mcp.prompt.name"
	AttrMCPProtocolVersion  = "mcp.protocol_version"
	AttrMCPRefusedReason    = "mcp.refused_reason"
	AttrMCPResourceURI      = "mcp.resource.uri"
	AttrMCPServer           = "mcp.server"
	AttrMCPServerName       = "mcp.server.name"
	AttrMCPServerVersion    = "mcp.server.version"
	AttrMCPToolHashes       = "mcp.tool_hashes"
	AttrMCPToolsCount       = "mcp.tools.count"
	AttrMCPToolsSHA256      = "mcp.tools.sha256"
	AttrMCPUnreadableReason = "mcp.unreadable_reason"

	AttrMonitorAlertID         = "monitor.alert_id"
	AttrMonitorAlertsSinceLast = "monitor.alerts_since_last"
	AttrMonitorEvaluated       = "monitor.evaluated"
	AttrMonitorEventID         = "monitor.event_id"
	AttrMonitorIndex           = "monitor.index"
	AttrMonitorInstance        = "monitor.instance"
	AttrMonitorIntervalS       = "monitor.interval_s"
	AttrMonitorKind            = "monitor.kind"
	AttrMonitorMessage         = "monitor.message"
	AttrMonitorRaisedAt        = "monitor.raised_at"
	AttrMonitorRule            = "monitor.rule"
	AttrMonitorSession         = "monitor.session"
	AttrMonitorSeverity        = "monitor.severity"
	AttrMonitorSource          = "monitor.source"
	AttrMonitorTenant          = "monitor.tenant"
	AttrMonitorTreeSize        = "monitor.tree_size"
	AttrMonitorVerifiedRoot    = "monitor.verified_root"
	AttrMonitorVerifiedSize    = "monitor.verified_size"

	AttrNetworkPeerAddress = "network.peer.address"

	AttrOtelDurationMS   = "otel.duration_ms"
	AttrOtelEventNames   = "otel.event_names"
	AttrOtelParentSpanID = "otel.parent_span_id"
	AttrOtelSpanID       = "otel.span_id"
	AttrOtelStatusCode   = "otel.status_code"
	AttrOtelTraceID      = "otel.trace_id"

	AttrReplayCheckpointRoot   = "replay.checkpoint_root"
	AttrReplayCheckpointSize   = "replay.checkpoint_size"
	AttrReplayDifferences      = "replay.differences"
	AttrReplayFirstCode        = "replay.first_code"
	AttrReplayFirstIndex       = "replay.first_index"
	AttrReplayFirstPath        = "replay.first_path"
	AttrReplayRecordedAttempts = "replay.recorded_attempts"
	AttrReplayRequests         = "replay.requests"
	AttrReplayServedAttempts   = "replay.served_attempts"
	AttrReplaySession          = "replay.session"
	AttrReplayTenant           = "replay.tenant"
	AttrReplayVerdict          = "replay.verdict"

	AttrReportCheckpointRoot = "report.checkpoint_root"
	AttrReportCheckpointSize = "report.checkpoint_size"
	AttrReportFormat         = "report.format"
	AttrReportFrom           = "report.from"
	AttrReportProfile        = "report.profile"
	AttrReportSHA256         = "report.sha256"
	AttrReportTenant         = "report.tenant"
	AttrReportTo             = "report.to"

	AttrRetentionFloor    = "retention.floor"
	AttrRetentionProfiles = "retention.profiles"
	AttrRetentionScope    = "retention.scope"

	AttrServerAddress = "server.address"
	AttrServerPort    = "server.port"

	AttrTokenActors = "token.actors"
	AttrTokenAt     = "token.at"
	AttrTokenGlobal = "token.global"
	AttrTokenID     = "token.id"
	AttrTokenName   = "token.name"
	AttrTokenScopes = "token.scopes"
	AttrTokenTenant = "token.tenant"

	AttrURLPath  = "url.path"
	AttrURLQuery = "url.query"

	// timestamp.issued (all) and timestamp.failed (tsa, tree_size, error).
	AttrTimestampTSA        = "timestamp.tsa"        // the TSA's URL
	AttrTimestampTreeSize   = "timestamp.tree_size"  // the checkpoint's size
	AttrTimestampCheckpoint = "timestamp.checkpoint" // the checkpoint stamped, as published (the imprint's input)
	AttrTimestampToken      = "timestamp.token"      // the DER TimeStampToken, standard base64
	AttrTimestampTime       = "timestamp.time"       // the token's genTime, RFC 3339 (what the token says)
	AttrTimestampError      = "timestamp.error"      // why the TSA gave no token
)
