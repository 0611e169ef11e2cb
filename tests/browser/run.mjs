// rillrpc from a real browser (make test-browser; see mk/browser.mk).
//
// A page served by a tiny static server on one port calls rill-bench's echo-server on another
// port (so another origin: CORS) with @connectrpc/connect-web, over the Connect and the
// gRPC-Web transports, in headless Chromium (Debian's `chromium`) driven by playwright-core.
// Plain http://, so the browser speaks HTTP/1.1. Each transport runs in its own browser
// context (its own preflight cache), against the server started with `--cors '*'` and again
// with `--cors <the page's origin>`:
//   unary, server stream x3   PingPong's payload back; EchoServer count=3 gives 3 responses
//   error unary / stream      count=-5 ends the call with NOT_FOUND, the payload as message
//   metadata unary / stream   `echo-x: v` comes back readable in onHeader and onTrailer
//   preflight                 for both methods the browser sent OPTIONS to the server and got
//                             204 (seen through the DevTools protocol: Playwright's own
//                             network events leave preflights out)
// and the negative checks: a server started without --cors, or allowing another origin
// only, is blocked by the browser (the call fails, Chromium logs the CORS error).
//
// Build (into build/, not committed): buf (the @bufbuild/buf package's binary) runs
// protoc-gen-es on ../shared/idl/echo.proto, esbuild bundles page.ts.
//
//   node run.mjs --echo-server PATH [--idl DIR] [--chromium PATH]
//
// Exits non-zero if any check fails or none ran; prints a table and "N passed, N failed"
// (BROWSER_TEST_VERBOSE=1: each check's detail too; on a failure, the server's network
// events and the page's console).
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const started = Date.now();

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const echoServer = arg("--echo-server", join(here, "../../target/debug/echo-server"));
const idl = resolve(arg("--idl", process.env.RILL_SHARED ? join(process.env.RILL_SHARED, "idl") : join(here, "../../../shared/idl")));
const chromiumPath = arg("--chromium", process.env.CHROMIUM ?? "");

const children = new Set();
function cleanup() {
  for (const c of children) {
    try { c.kill("SIGKILL"); } catch {}
  }
}
process.on("exit", cleanup);
function die(msg) {
  console.error(`test-browser: ${msg}`);
  process.exit(1);
}
// Nothing here should take long: a hang fails the run instead of stalling `make test`.
setTimeout(() => die("timed out after 240 s"), 240_000).unref();

// --- build -------------------------------------------------------------------------------
function build() {
  rmSync(join(here, "build"), { recursive: true, force: true });
  const bin = join(here, "node_modules/.bin");
  execFileSync(join(bin, "buf"), ["generate", idl, "--path", join(idl, "echo.proto"), "--template", "buf.gen.yaml"], {
    cwd: here,
    stdio: "inherit",
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
  });
  esbuild.buildSync({
    entryPoints: [join(here, "page.ts")],
    bundle: true,
    format: "iife",
    target: "chrome120",
    outfile: join(here, "build/page.js"),
    logLevel: "warning",
  });
}

// --- the page's origin: a static server ----------------------------------------------------
function startStatic() {
  const html = `<!doctype html><meta charset="utf-8"><title>loading</title><script src="/page.js"></script>`;
  const js = readFileSync(join(here, "build/page.js"));
  const srv = createServer((req, res) => {
    if (req.url === "/" || req.url === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
    } else if (req.url === "/page.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(js);
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((ok) => srv.listen(0, "127.0.0.1", () => ok(srv)));
}

// --- the echo server -------------------------------------------------------------------------
function startEcho(cors) {
  const args = ["--impl", "rill", "--port", "0", "--host", "127.0.0.1", ...cors.flatMap((o) => ["--cors", o])];
  const child = spawn(echoServer, args, { stdio: ["ignore", "pipe", "inherit"] });
  children.add(child);
  return new Promise((ok, fail) => {
    let out = "";
    const t = setTimeout(() => fail(new Error(`echo-server ${args.join(" ")}: no "listening on" in 30 s`)), 30_000);
    child.on("error", (e) => fail(new Error(`echo-server: ${e.message}`)));
    child.on("exit", (code) => fail(new Error(`echo-server ${args.join(" ")} exited (${code}): ${out}`)));
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        ok({ child, url: `http://${m[1]}`, stop: () => { children.delete(child); child.kill("SIGKILL"); } });
      }
    });
  });
}

// --- one browser context, one page: records its network events and console -------------------
async function openPage(browser, pageUrl) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const net = [];
  const consoleLines = [];
  context.on("request", (r) => net.push({ method: r.method(), url: r.url(), request: r, status: null, failure: null }));
  context.on("response", (resp) => {
    const e = net.find((n) => n.request === resp.request());
    if (e) e.status = resp.status(), e.headers = resp.headers();
  });
  context.on("requestfailed", (r) => {
    const e = net.find((n) => n.request === r);
    if (e) e.failure = r.failure()?.errorText ?? "failed";
  });
  // Playwright reports no CORS preflights; the DevTools protocol does (type "Preflight").
  const cdp = await context.newCDPSession(page);
  const preflights = new Map(); // requestId -> { url, status }
  cdp.on("Network.requestWillBeSent", (e) => {
    if (e.type === "Preflight" || e.request.method === "OPTIONS") preflights.set(e.requestId, { url: e.request.url, method: e.request.method, type: e.type, status: null });
  });
  const protocols = []; // [url, protocol] of every response
  cdp.on("Network.responseReceived", (e) => {
    protocols.push([e.response.url, e.response.protocol]);
    const p = preflights.get(e.requestId);
    if (p) p.status = e.response.status, p.headers = e.response.headers;
  });
  cdp.on("Network.loadingFailed", (e) => {
    const p = preflights.get(e.requestId);
    if (p) p.failure = e.errorText + (e.corsErrorStatus ? ` (${e.corsErrorStatus.corsError})` : "");
  });
  await cdp.send("Network.enable");
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => document.title === "ready", null, { timeout: 15_000 });
  return { context, page, net, consoleLines, preflights, protocols };
}

function netSummary(net, origin) {
  return net
    .filter((n) => n.url.startsWith(origin))
    .map((n) => `    ${n.method} ${new URL(n.url).pathname} -> ${n.status ?? n.failure ?? "?"}` +
      (n.headers ? ` [${Object.entries(n.headers).filter(([k]) => /^(access-control|content-type|grpc-|echo-|trailer-)/.test(k)).map(([k, v]) => `${k}: ${v}`).join("; ")}]` : ""))
    .join("\n");
}

const transports = ["connect", "grpc-web"];
const checkNames = ["unary", "server stream x3", "error unary", "error stream", "metadata unary", "metadata stream", "preflight"];

// The positive suite of one transport against one server.
async function suite(browser, pageUrl, server, transport) {
  const { context, page, net, consoleLines, preflights, protocols } = await openPage(browser, pageUrl);
  try {
    const results = await page.evaluate(([u, t]) => window.rillChecks(u, t), [server.url, transport]);
    const pre = [...preflights.values()].filter((p) => p.url.startsWith(server.url));
    const answered = pre.filter((p) => p.method === "OPTIONS" && p.status === 204);
    const paths = [...new Set(answered.map((p) => new URL(p.url).pathname))];
    // Every method called must have had its preflight (the calls carry a non-safelisted
    // content type, and some the echo-x header).
    const want = ["/echo.TestService/PingPong", "/echo.TestService/EchoServer"];
    results.push({
      check: "preflight",
      ok: want.every((w) => paths.includes(w)),
      detail: pre.length
        ? `${pre.length} preflights, ${answered.length} OPTIONS answered 204 (${paths.join(", ")}); ` +
          pre.map((p) => `${p.method} ${new URL(p.url).pathname} -> ${p.status ?? p.failure ?? "?"}` +
            (p.headers ? ` [${Object.entries(p.headers).filter(([k]) => /^access-control/i.test(k)).map(([k, v]) => `${k}: ${v}`).join("; ")}]` : "")).join(" | ")
        : "no preflight to the server seen",
    });
    const wire = new Set(protocols.filter(([u]) => u.startsWith(server.url)).map(([, p]) => p));
    return { results, net, consoleLines, wire };
  } finally {
    await context.close();
  }
}

// The negative check: the call fails and Chromium says CORS blocked it.
async function blocked(browser, pageUrl, server, transport) {
  const { context, page, net, consoleLines } = await openPage(browser, pageUrl);
  try {
    const r = await page.evaluate(([u, t]) => window.rillProbe(u, t), [server.url, transport]);
    // Console messages may arrive just after the failed fetch.
    await page.waitForTimeout(200);
    const cors = consoleLines.find((l) => /CORS policy/i.test(l));
    return {
      ok: !r.ok && Boolean(cors),
      detail: r.ok ? `the call went through (${r.detail})` : `${r.detail}; console: ${cors ?? "(no CORS message)"}`,
      net,
      consoleLines,
    };
  } finally {
    await context.close();
  }
}

function findChromium() {
  if (chromiumPath) return chromiumPath;
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
  } catch {
    die("no chromium on PATH (mk/browser.mk installs Debian's package)");
  }
}

async function main() {
  build();
  const staticSrv = await startStatic();
  const pageOrigin = `http://127.0.0.1:${staticSrv.address().port}`;
  const pageUrl = `${pageOrigin}/index.html`;
  const browser = await chromium.launch({ executablePath: findChromium(), headless: true });
  console.log(`browser: Chromium ${browser.version()} (playwright-core), page origin ${pageOrigin}`);

  const columns = []; // { name, results: Map(check -> {ok, detail}) }
  const failures = [];
  const wires = new Set(); // the HTTP versions of the echo server's responses
  for (const cors of [["*"], [pageOrigin]]) {
    const server = await startEcho(cors);
    for (const t of transports) {
      const name = `${t} cors=${cors[0] === "*" ? "*" : "origin"}`;
      const { results, net, consoleLines, wire } = await suite(browser, pageUrl, server, t);
      for (const p of wire) wires.add(p);
      columns.push({ name, results: new Map(results.map((r) => [r.check, r])) });
      const bad = results.filter((r) => !r.ok);
      if (bad.length) {
        failures.push(`${name} (server ${server.url}, --cors ${cors[0]}):\n` +
          bad.map((r) => `  ${r.check}: ${r.detail}`).join("\n") +
          `\n  network:\n${netSummary(net, server.url)}\n  console:\n${consoleLines.map((l) => `    ${l}`).join("\n")}`);
      }
    }
    server.stop();
  }

  const negatives = []; // { name, cells: [{ok, detail}] per transport }
  for (const [label, cors] of [["no --cors: blocked", []], ["--cors other origin: blocked", ["http://127.0.0.1:1"]]]) {
    const server = await startEcho(cors);
    const cells = [];
    for (const t of transports) {
      const r = await blocked(browser, pageUrl, server, t);
      cells.push(r);
      if (!r.ok) {
        failures.push(`${label}, ${t}: ${r.detail}\n  network:\n${netSummary(r.net, server.url)}\n  console:\n${r.consoleLines.map((l) => `    ${l}`).join("\n")}`);
      }
    }
    negatives.push({ label, cells });
    server.stop();
  }
  await browser.close();
  staticSrv.close();

  // The table: a row per check, a column per transport and server.
  const w0 = Math.max(...[...checkNames, ...negatives.map((n) => n.label)].map((s) => s.length));
  const ws = columns.map((c) => Math.max(c.name.length, 4));
  const row = (first, cells) => `${first.padEnd(w0)} | ${cells.map((c, i) => c.padEnd(ws[i])).join(" | ")}`;
  const mark = (r) => (r === undefined ? "-" : r.ok ? "ok" : "FAIL");
  console.log("");
  console.log(row("check", columns.map((c) => c.name)));
  console.log(`${"-".repeat(w0)}-+-${ws.map((w) => "-".repeat(w)).join("-+-")}`);
  let passed = 0, failed = 0;
  for (const check of checkNames) {
    const cells = columns.map((c) => c.results.get(check));
    for (const r of cells) r?.ok ? passed++ : failed++;
    console.log(row(check, cells.map(mark)));
  }
  const negW = transports.map((t) => t.length);
  console.log("");
  console.log(`${"negative".padEnd(w0)} | ${transports.map((t) => t).join(" | ")}`);
  console.log(`${"-".repeat(w0)}-+-${negW.map((w) => "-".repeat(w)).join("-+-")}`);
  for (const n of negatives) {
    for (const r of n.cells) r.ok ? passed++ : failed++;
    console.log(`${n.label.padEnd(w0)} | ${n.cells.map((r, i) => mark(r).padEnd(negW[i])).join(" | ")}`);
  }
  if (process.env.BROWSER_TEST_VERBOSE) {
    for (const c of columns) for (const r of c.results.values()) console.log(`  ${c.name} ${r.check}: ${r.detail}`);
    for (const n of negatives) n.cells.forEach((r, i) => console.log(`  ${n.label} ${transports[i]}: ${r.detail}`));
  }
  console.log(`\nthe echo server's responses came over: ${[...wires].join(", ") || "(none)"}`);
  if (failures.length) {
    console.log("\nfailures:");
    for (const f of failures) console.log(f);
  }
  console.log(`\ntest-browser (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  console.log(`browser: ${passed} passed, ${failed} failed`);
  if (failed > 0 || passed === 0) process.exit(1);
}

main().catch((e) => die(e.stack ?? String(e)));
