// An agent on the official npm SDKs that reaches the provider's real host
// (api.openai.com, generativelanguage.googleapis.com) and is captured by the
// log server's interception proxy: node intercept.mjs openai|gemini WIRING,
// with HTTPS_PROXY, NODE_EXTRA_CA_CERTS, SESSION and the provider's key in
// the environment. WIRING is how the SDK's fetch is sent to HTTPS_PROXY, as
// docs/capture.md shows it:
//   dispatcher  undici's EnvHttpProxyAgent given to this client
//   global      undici's EnvHttpProxyAgent as the process's global dispatcher
//   none        nothing (Node's fetch reads no proxy variable unless Node has
//               NODE_USE_ENV_PROXY and it is set)
// Prints what the SDK returned, or the root cause of its failure, as JSON.
import OpenAI from "openai";
import { GoogleGenAI } from "@google/genai";
import { EnvHttpProxyAgent, setGlobalDispatcher } from "undici";

const [sdk, wiring] = process.argv.slice(2);
const headers = { "X-Audit-Session": process.env.SESSION };
let dispatcher;
if (wiring === "dispatcher") {
  dispatcher = new EnvHttpProxyAgent();
} else if (wiring === "global") {
  setGlobalDispatcher(new EnvHttpProxyAgent());
} else if (wiring !== "none") {
  throw new Error(`unknown wiring ${wiring}`);
}

const out = {};
try {
  if (sdk === "openai") {
    const client = new OpenAI({
      defaultHeaders: headers, maxRetries: 0,
      ...(dispatcher && { fetchOptions: { dispatcher } }),
    });
    const r = await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Is 5 mg of warfarin right?" }] });
    out.model = r.model;
    out.content = r.choices[0].message.content;
  } else if (sdk === "gemini") {
    const ai = new GoogleGenAI({
      apiKey: process.env.GEMINI_API_KEY,
      httpOptions: { headers, ...(dispatcher && { fetch: (url, init) => fetch(url, { ...init, dispatcher }) }) },
    });
    const r = await ai.models.generateContent({ model: "gemini-2.5-flash", contents: "Is 5 mg of warfarin right?" });
    out.model = r.modelVersion;
    out.content = r.text;
  } else {
    throw new Error(`unknown sdk ${sdk}`);
  }
} catch (e) {
  let cause = e;
  while (cause.cause) cause = cause.cause;
  out.error = `${e.message}: ${cause.message}`;
}
console.log(JSON.stringify(out));
