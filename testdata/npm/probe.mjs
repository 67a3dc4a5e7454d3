// Drives the official npm SDKs through the LLMAuditTrail capture proxy:
// node probe.mjs gemini|azure, with PROXY (the log server's URL), TOKEN
// (an audit token), SESSION and the provider keys in the environment.
// Prints what the SDK returned, as JSON.
import { GoogleGenAI } from "@google/genai";
import { AzureOpenAI } from "openai";

const { PROXY, TOKEN, SESSION } = process.env;
const audit = { "X-Audit-Token": TOKEN, "X-Audit-Session": SESSION };
const out = {};
if (process.argv[2] === "gemini") {
  const ai = new GoogleGenAI({ apiKey: process.env.GEMINI_API_KEY, httpOptions: { baseUrl: PROXY + "/proxy/gemini/", headers: audit } });
  const r = await ai.models.generateContent({
    model: "gemini-2.5-flash", contents: "Is 5 mg of warfarin right?",
    config: { tools: [{ functionDeclarations: [{ name: "dose_check", description: "Checks a dose." }] }] },
  });
  out.functionCalls = (r.functionCalls || []).map((f) => f.name);
  let text = "";
  for await (const chunk of await ai.models.generateContentStream({ model: "gemini-2.5-flash", contents: "Summarise the label." })) {
    text += chunk.text || "";
  }
  out.streamed = text;
} else {
  const client = new AzureOpenAI({ endpoint: PROXY + "/proxy/azure-east", apiKey: process.env.AZURE_OPENAI_API_KEY,
    apiVersion: "2024-10-21", deployment: "gpt-4o", defaultHeaders: audit });
  const r = await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Check invoice INV-2291." }] });
  out.content = r.choices[0].message.content;
  out.model = r.model;
}
console.log(JSON.stringify(out));
