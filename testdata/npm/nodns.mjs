// Loaded with `node --import ./nodns.mjs` by the interception tests: the
// process resolves no name. Every dns.lookup (the one net.connect, and so
// fetch, uses) fails as an unknown name would (ENOTFOUND), without asking
// any resolver, and its name is written to stderr as "dns.lookup NAME", so
// a test sees which hosts the agent tried to reach by itself.
import dns from "node:dns";

function refuse(hostname) {
  process.stderr.write(`dns.lookup ${hostname}\n`);
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND", syscall: "getaddrinfo", hostname });
}

dns.lookup = (hostname, options, callback) => {
  process.nextTick(typeof options === "function" ? options : callback, refuse(hostname));
};
dns.promises.lookup = async (hostname) => {
  throw refuse(hostname);
};
