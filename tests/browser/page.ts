// The page's script (bundled by esbuild into build/page.js): @connectrpc/connect-web calls
// rillrpc's echo-server, whose origin differs from the page's, over the transport the runner
// names. run.mjs calls window.rillChecks(baseUrl, transport) and gets one result per check.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { RequestSchema, TestService } from "./build/gen/echo_pb";

type Result = { check: string; ok: boolean; detail: string };

const enc = new TextEncoder();
const dec = new TextDecoder();
const req = (payload: string, count = 0) =>
  create(RequestSchema, { payload: enc.encode(payload), count });

function transport(baseUrl: string, name: string): Transport {
  if (name === "connect") {
    // The echo handler decodes protobuf, so the binary codec (application/proto).
    return createConnectTransport({ baseUrl, useBinaryFormat: true });
  }
  if (name === "grpc-web") {
    return createGrpcWebTransport({ baseUrl, useBinaryFormat: true });
  }
  throw new Error(`no transport ${name}`);
}

function describe(e: unknown): string {
  if (e instanceof ConnectError) {
    return `ConnectError code=${Code[e.code]} rawMessage=${JSON.stringify(e.rawMessage)}` +
      (e.cause ? ` cause=${String(e.cause)}` : "");
  }
  return `${e}`;
}

async function check(out: Result[], name: string, f: () => Promise<string>) {
  try {
    out.push({ check: name, ok: true, detail: await f() });
  } catch (e) {
    out.push({ check: name, ok: false, detail: describe(e) });
  }
}

function expect(cond: boolean, what: string) {
  if (!cond) throw new Error(what);
}

// Expects the call to end with NOT_FOUND and the payload as its message.
async function expectNotFound(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
  } catch (e) {
    expect(e instanceof ConnectError, `not a ConnectError: ${describe(e)}`);
    const ce = e as ConnectError;
    expect(ce.code === Code.NotFound && ce.rawMessage === "not here", `got ${describe(e)}`);
    return describe(e);
  }
  throw new Error("the call succeeded; expected NOT_FOUND");
}

// Calls with `echo-x: v` and expects it back in the response headers and trailers.
async function expectEchoedMetadata(
  call: (opts: { headers: Record<string, string>; onHeader: (h: Headers) => void; onTrailer: (t: Headers) => void; timeoutMs: number }) => Promise<void>,
): Promise<string> {
  let header: Headers | undefined;
  let trailer: Headers | undefined;
  await call({
    headers: { "echo-x": "v" },
    onHeader: (h) => (header = h),
    onTrailer: (t) => (trailer = t),
    timeoutMs: 10000,
  });
  const h = header?.get("echo-x");
  const t = trailer?.get("echo-x");
  expect(h === "v" && t === "v", `header echo-x=${h}, trailer echo-x=${t}` +
    ` (headers: ${[...(header ?? new Headers()).keys()]}; trailers: ${[...(trailer ?? new Headers()).keys()]})`);
  return `header echo-x=${h}, trailer echo-x=${t}`;
}

async function rillChecks(baseUrl: string, name: string): Promise<Result[]> {
  const client = createClient(TestService, transport(baseUrl, name));
  const opts = { timeoutMs: 10000 };
  const out: Result[] = [];
  await check(out, "unary", async () => {
    const r = await client.pingPong(req("hello"), opts);
    expect(dec.decode(r.payload) === "hello", `payload ${JSON.stringify(dec.decode(r.payload))}`);
    return "payload hello";
  });
  await check(out, "server stream x3", async () => {
    const got: string[] = [];
    for await (const r of client.echoServer(req("s", 3), opts)) got.push(dec.decode(r.payload));
    expect(got.length === 3 && got.every((p) => p === "s"), `responses ${JSON.stringify(got)}`);
    return `${got.length} responses`;
  });
  await check(out, "error unary", () => expectNotFound(() => client.pingPong(req("not here", -5), opts)));
  await check(out, "error stream", () =>
    expectNotFound(async () => {
      for await (const _ of client.echoServer(req("not here", -5), opts));
    }));
  await check(out, "metadata unary", () =>
    expectEchoedMetadata(async (o) => {
      await client.pingPong(req("md"), o);
    }));
  await check(out, "metadata stream", () =>
    expectEchoedMetadata(async (o) => {
      for await (const _ of client.echoServer(req("md", 2), o));
    }));
  return out;
}

// The negative check: one unary call, which CORS should block.
async function rillProbe(baseUrl: string, name: string): Promise<{ ok: boolean; detail: string }> {
  const client = createClient(TestService, transport(baseUrl, name));
  try {
    const r = await client.pingPong(req("hello"), { timeoutMs: 10000 });
    return { ok: true, detail: `answered: payload ${dec.decode(r.payload)}` };
  } catch (e) {
    return { ok: false, detail: describe(e) };
  }
}

Object.assign(window, { rillChecks, rillProbe });
document.title = "ready";
