// A Node agent as a team would instrument it: the npm openai SDK, traced by
// OpenTelemetry's GenAI instrumentation (@opentelemetry/instrumentation-openai,
// message content on) or by OpenInference (INSTRUMENTATION=openinference),
// exported by @opentelemetry/sdk-node over OTLP/HTTP. It is configured by the
// standard variables alone:
//
//   OTEL_EXPORTER_OTLP_ENDPOINT   the log server's URL (/v1/traces, /v1/logs)
//   OTEL_EXPORTER_OTLP_HEADERS    Authorization=Bearer%20<write token>
//   OTEL_EXPORTER_OTLP_PROTOCOL   http/protobuf or http/json
//   OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true
//   OPENAI_BASE_URL, OPENAI_API_KEY (a fake upstream in the tests)
//
// With HTTP_INSTRUMENTATION=undici it also traces its HTTP requests
// (@opentelemetry/instrumentation-undici: the openai SDK's fetch), which
// sends the W3C traceparent of each request's client span; with
// AUDIT_TOKEN (and AUDIT_SESSION) it sends the capture proxy's headers, for
// OPENAI_BASE_URL pointing at the log server's /proxy/openai/v1.
//
// It makes a chat call that asks for a tool, runs the tool in a span of its
// own (execute_tool), sends the result back, makes a streamed call, and
// prints the trace id (all of it under one invoke_agent span) as JSON.
"use strict";

const { NodeSDK } = require("@opentelemetry/sdk-node");

// INSTRUMENTATION picks who traces the openai SDK: OpenTelemetry's GenAI
// instrumentation (default; content as log records) or Arize's OpenInference
// (content as llm.input_messages / llm.output_messages span attributes).
function instrumentation() {
  if (process.env.INSTRUMENTATION === "openinference") {
    const { OpenAIInstrumentation } = require("@arizeai/openinference-instrumentation-openai");
    return new OpenAIInstrumentation();
  }
  const { OpenAIInstrumentation } = require("@opentelemetry/instrumentation-openai");
  return new OpenAIInstrumentation();
}

function instrumentations() {
  const list = [instrumentation()];
  if (process.env.HTTP_INSTRUMENTATION === "undici") {
    const { UndiciInstrumentation } = require("@opentelemetry/instrumentation-undici");
    list.push(new UndiciInstrumentation());
  }
  return list;
}

const sdk = new NodeSDK({ serviceName: "refill-agent", instrumentations: instrumentations() });
sdk.start();

// After the SDK: the instrumentation patches openai as it is loaded.
const { trace, SpanStatusCode } = require("@opentelemetry/api");
const OpenAI = require("openai");

async function main() {
  const tracer = trace.getTracer("refill-agent");
  const defaultHeaders = {};
  if (process.env.AUDIT_TOKEN) {
    defaultHeaders["X-Audit-Token"] = process.env.AUDIT_TOKEN;
    defaultHeaders["X-Audit-Session"] = process.env.AUDIT_SESSION || "refill";
  }
  const client = new OpenAI({ defaultHeaders, maxRetries: 0 });
  let traceId;
  await tracer.startActiveSpan("invoke_agent refill", { attributes: { "gen_ai.operation.name": "invoke_agent" } }, async (agent) => {
    traceId = agent.spanContext().traceId;
    const messages = [
      { role: "system", content: "You check prescriptions." },
      { role: "user", content: process.env.PROMPT || "Refill warfarin 5 mg for patient 0042?" },
    ];
    const tools = [{ type: "function", function: { name: "dose_check", description: "Checks a dose.", parameters: { type: "object", properties: { drug: { type: "string" } } } } }];
    const first = await client.chat.completions.create({ model: "gpt-4o", messages, tools });
    const call = first.choices[0].message.tool_calls[0];
    const result = await tracer.startActiveSpan(`execute_tool ${call.function.name}`, {
      attributes: {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.function.name, "gen_ai.tool.call.id": call.id,
        "gen_ai.tool.call.arguments": call.function.arguments,
      },
    }, async (span) => {
      const out = JSON.stringify({ ok: true, max_daily_mg: 10 });
      span.setAttribute("gen_ai.tool.call.result", out);
      span.setStatus({ code: SpanStatusCode.OK });
      span.end();
      return out;
    });
    messages.push(first.choices[0].message, { role: "tool", tool_call_id: call.id, content: result });
    await client.chat.completions.create({ model: "gpt-4o", messages });
    const stream = await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Summarise the refill." }], stream: true });
    for await (const _ of stream) {
      // drained
    }
    agent.end();
  });
  await sdk.shutdown();
  console.log(JSON.stringify({ traceId }));
}

main().catch(async (err) => {
  console.error(err);
  await sdk.shutdown().catch(() => {});
  process.exit(1);
});
