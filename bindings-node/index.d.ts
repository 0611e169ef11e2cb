// TypeScript declarations for rillrpc (Node).
/// <reference types="node" />
import { EventEmitter } from 'node:events'
import { Readable, Writable, Duplex } from 'node:stream'

/** A metadata value: a string, or a Buffer for `-bin` keys; repeated keys give arrays. */
export type MetadataValue = string | Buffer
/** Metadata in: a plain object, a Map, [key, value] pairs, or a grpc-js Metadata. */
export type MetadataInit =
  | Record<string, MetadataValue | MetadataValue[]>
  | Map<string, MetadataValue | MetadataValue[]>
  | Array<[string, MetadataValue]>
  | { getMap(): unknown; toJSON(): Record<string, MetadataValue[]> }
/** Metadata out: one value per key, or an array when the key was repeated. */
export type Metadata = Record<string, MetadataValue | MetadataValue[]>

/** gRPC status codes. */
export declare const status: {
  readonly OK: 0
  readonly CANCELLED: 1
  readonly UNKNOWN: 2
  readonly INVALID_ARGUMENT: 3
  readonly DEADLINE_EXCEEDED: 4
  readonly NOT_FOUND: 5
  readonly ALREADY_EXISTS: 6
  readonly PERMISSION_DENIED: 7
  readonly RESOURCE_EXHAUSTED: 8
  readonly FAILED_PRECONDITION: 9
  readonly ABORTED: 10
  readonly OUT_OF_RANGE: 11
  readonly UNIMPLEMENTED: 12
  readonly INTERNAL: 13
  readonly UNAVAILABLE: 14
  readonly DATA_LOSS: 15
  readonly UNAUTHENTICATED: 16
}

/** Call shapes, for `Server.handle` and `Server.addMethod`. */
export declare const SHAPE: {
  readonly UNARY: 0
  readonly CLIENT_STREAMING: 1
  readonly SERVER_STREAMING: 2
  readonly BIDI: 3
}

/** The wire protocol of a call. A rillrpc server answers all four on one port ('ttheader':
 * Kitex's TTHeader transports, Thrift payloads: TTHeader Streaming for streaming calls,
 * Thrift PingPong for unary ones). */
export type Protocol = 'grpc' | 'grpc-web' | 'connect' | 'ttheader'

/**
 * The HTTP version a channel's calls travel over; 'auto' lets a TLS server choose by ALPN
 * on the channel's first connection (HTTP/2 over plain TCP, and for gRPC).
 */
export type HttpVersion = 'http1' | 'http2' | 'auto'

/**
 * A method's idempotency level (protobuf's `idempotency_level`: IDEMPOTENCY_UNKNOWN,
 * NO_SIDE_EFFECTS, IDEMPOTENT). A unary call to a method free of side effects goes as
 * Connect's GET on a channel with `httpGet`; a unary method registered so answers it.
 */
export type Idempotency = 'unknown' | 'no-side-effects' | 'idempotent'

export interface StatusObject {
  code: number
  details: string
  metadata: Metadata
  /** `grpc-status-details-bin`, when the peer sent rich error details. */
  statusDetails?: Buffer
}

/** A call that ended with a status other than OK. */
export declare class RpcError extends Error {
  constructor(code: number, details?: string, metadata?: Metadata, statusDetails?: Buffer)
  /** The gRPC status code (0..16). */
  code: number
  details: string
  /** The trailers. */
  metadata: Metadata
  statusDetails?: Buffer
  readonly status: StatusObject
}

/**
 * A Kitex business status: an error that is part of a service's API (Kitex's
 * `kerrors.BizStatusError`). A call that ends with one fails with it on every protocol; a
 * handler throws it to end its call with one. `code` is INTERNAL (a peer's: never OK, and
 * another code where a Kitex error carries one of its own); `metadata` holds the biz status
 * as Kitex sends it over gRPC (`biz-status`, `biz-extra`).
 */
export declare class BizStatusError extends RpcError {
  constructor(bizCode: number, bizMessage?: string, bizExtra?: Record<string, string>)
  bizCode: number
  bizMessage: string
  bizExtra: Record<string, string>
}

export interface Codec<Req, Res> {
  /** Request to bytes (client) or response to bytes (server). Default: Buffers as they are. */
  serialize?: (value: Req) => Buffer | Uint8Array
  /** Bytes to response (client) or to request (server). Default: the Buffer. */
  deserialize?: (bytes: Buffer) => Res
}

export interface CallOptions<Req = Buffer, Res = Buffer> extends Codec<Req, Res> {
  metadata?: MetadataInit
  /** Milliseconds; sent as grpc-timeout. */
  timeout?: number
  /** A Date or epoch milliseconds. */
  deadline?: Date | number
  /** Cancels the call when aborted. */
  signal?: AbortSignal
  compression?: 'gzip' | 'identity'
  /** Largest response message accepted (default 4 MiB). */
  maxReceiveMessageSize?: number
  /**
   * `proto`, `json`, ...: the content type becomes application/grpc+<subtype>; on a
   * `ttheader` channel, `proto` is Kitex's Protobuf and anything else Thrift. A
   * `makeClient` method says `proto` unless its call names another ('' names none).
   */
  contentSubtype?: string
  waitForReady?: boolean
  /**
   * The method's idempotency ('unknown' by default; a `makeClient` method takes its
   * definition's). A unary call marked 'no-side-effects' goes as an HTTP GET on a Connect
   * channel with `httpGet`.
   */
  idempotency?: Idempotency
  /** Object-mode high water mark of the call's streams (default 16). */
  highWaterMark?: number
}

/** What every client call has. Events: 'metadata' (headers), 'status'. */
export interface CallBase {
  /** The response headers. */
  readonly headers: Promise<Metadata>
  /** The trailers, once the call ended. */
  readonly trailers: Promise<Metadata>
  /** Aborts the call: the server sees CANCELLED, this call fails with CANCELLED. */
  cancel(): void
  /** The final status, once the call ended. */
  getStatus(): StatusObject | null
}

export interface UnaryResponse<Res> extends Promise<Res> {
  readonly headers: Promise<Metadata>
  readonly trailers: Promise<Metadata>
  cancel(): void
  readonly call: EventEmitter & CallBase
}

/** Server streaming: a Readable (and async iterable) of responses. */
export interface ResponseStream<Res> extends Readable, CallBase {}
/** Client streaming: a Writable of requests; `response` settles with the reply. */
export interface RequestStream<Req, Res> extends Writable, CallBase {
  readonly response: Promise<Res>
}
/** Bidirectional streaming: write requests, read responses. */
export interface BidiStream<Req, Res> extends Duplex, CallBase {}

export interface ChannelOptions {
  /** PEM CA certificates to trust for https:// (system roots otherwise). */
  ca?: Buffer | string
  /** The name checked against the server certificate. */
  serverName?: string
  /** Client certificate chain and key (PEM), for mutual TLS. */
  cert?: Buffer | string
  key?: Buffer | string
  /** Milliseconds for one connection attempt. */
  connectTimeout?: number
  /** Milliseconds between HTTP/2 keepalive pings. */
  keepalive?: number
  userAgent?: string
  /**
   * Read and parse connections on the core's threads instead of the JS thread (default
   * false, or RILLRPC_NODE_OFFLOAD_IO=1): more streamed messages per second when the JS
   * thread is busy, one thread hop more per request and answer. A channel's TLS
   * connections are always offloaded.
   */
  offloadIo?: boolean
  /** Options merged into every call's. */
  callDefaults?: CallOptions<any, any>
  /** What every call of the channel speaks: 'grpc' (the default), 'grpc-web', 'connect', 'ttheader'. */
  protocol?: Protocol
  /**
   * What the calls travel over: 'http2' (the default) or 'http1', for gRPC-Web and Connect
   * to servers that speak only HTTP/1.1 (each call then has a connection to itself, and
   * bidi calls fail with UNIMPLEMENTED).
   */
  httpVersion?: HttpVersion
  /**
   * Connect's GET: unary calls marked `idempotency: 'no-side-effects'` (those of a
   * `makeClient` method whose definition says NO_SIDE_EFFECTS) go as HTTP GET requests,
   * the message in the URL, which HTTP caches can keep; a URL past 8 KiB goes as a POST.
   * Only for `protocol: 'connect'`; off by default.
   */
  httpGet?: boolean
  /**
   * The `:authority` (HTTP/2) and `Host` (HTTP/1.1) of every call in place of the
   * target's host:port, as grpc-js's `grpc.default_authority`: Kitex's gRPC clients send
   * the destination service's name there. The TLS server name is not changed by it.
   */
  authority?: string
  /**
   * What a server can make the channel hold of answers not read yet, in bytes. A
   * connection's window grows with the streams open on it, so that streams nobody reads
   * yet do not stall its other calls, up to this (64 MiB by default); past it, unread
   * streams stall their connection until they are read. 0: as far as HTTP/2 allows.
   */
  connectionReceiveBudget?: number
}

/** A client channel. Idle, it does not keep the process alive. */
export declare class Channel {
  /** "http://host:port", "https://host:port" or "host:port". */
  constructor(target: string, options?: ChannelOptions)
  /** The protocol every call speaks. */
  readonly protocol: Protocol
  /** The HTTP version the calls travel over. */
  readonly httpVersion: HttpVersion
  /** Whether Connect's GET is on. */
  readonly httpGet: boolean
  unary<Req = Buffer, Res = Buffer>(method: string, request: Req, options?: CallOptions<Req, Res>): UnaryResponse<Res>
  serverStreaming<Req = Buffer, Res = Buffer>(method: string, request: Req, options?: CallOptions<Req, Res>): ResponseStream<Res>
  clientStreaming<Req = Buffer, Res = Buffer>(method: string, options?: CallOptions<Req, Res>): RequestStream<Req, Res>
  bidi<Req = Buffer, Res = Buffer>(method: string, options?: CallOptions<Req, Res>): BidiStream<Req, Res>
  /** Later calls fail with UNAVAILABLE; calls in flight finish. */
  close(): void
}

/** One method of a service definition (@grpc/proto-loader's or grpc-js's). */
export interface MethodDefinition {
  path: string
  requestStream: boolean
  responseStream: boolean
  requestSerialize: (value: any) => Buffer
  requestDeserialize: (bytes: Buffer) => any
  responseSerialize: (value: any) => Buffer
  responseDeserialize: (bytes: Buffer) => any
  originalName?: string
  /**
   * The method's options, as @grpc/proto-loader gives them: `idempotency_level`
   * ('NO_SIDE_EFFECTS', or protobuf's number 1) makes its calls go as Connect's GET on a
   * channel with `httpGet`, and lets a server answer GET for it.
   */
  options?: { idempotency_level?: string | number; [k: string]: unknown }
}
export type ServiceDefinition = Record<string, MethodDefinition>

/** A client with a method per RPC: `client.EchoServer(req)`, also by original name. */
export declare function makeClient(
  channel: Channel | string,
  service: ServiceDefinition,
  defaults?: CallOptions<any, any>
): { channel: Channel; [method: string]: any }

/** What every server call has. Events: 'cancelled' (client cancel, deadline, lost connection). */
export interface ServerCallBase {
  readonly method: string
  readonly shape: number
  /** The protocol the client called with; the handler is the same for every one. */
  readonly protocol: Protocol
  /**
   * The codec of the messages, as the request's content type names it: 'proto' (also when
   * it names none), 'json', or another. Messages reach the handler as the client encoded
   * them; answer in the same codec.
   */
  readonly codec: string
  /** The request metadata. */
  readonly metadata: Metadata
  /** The client's deadline, or Infinity. */
  readonly deadline: Date | number
  readonly peer: string
  /** True once the call ended other than by this handler (cancel, deadline, connection). */
  readonly cancelled: boolean
  sendHeaders(metadata?: MetadataInit): void
  /** Trailers to send with the final status. */
  setTrailers(metadata: MetadataInit): void
  /** Ends the call now with this status. */
  sendStatus(status: { code: number; details?: string; metadata?: MetadataInit; statusDetails?: Buffer }): void
}
export interface ServerUnaryCall<Req> extends EventEmitter, ServerCallBase {
  readonly request: Req
}
export interface ServerReadableCall<Req> extends Readable, ServerCallBase {}
export interface ServerWritableCall<Req, Res> extends Writable, ServerCallBase {
  readonly request: Req
}
export interface ServerDuplexCall<Req, Res> extends Duplex, ServerCallBase {}

export interface ServerOptions {
  /** PEM certificate chain and key: serve TLS. */
  cert?: Buffer | string
  key?: Buffer | string
  /** Mutual TLS: the CAs (PEM) a client's certificate must chain to; clients without one fail. */
  ca?: Buffer | string
  /** ms a new connection may take to finish TLS and its first HTTP bytes (default 10000). */
  handshakeTimeout?: number
  /** At most this many connections at once (default: no limit). */
  maxConnections?: number
  /**
   * ms (±10%) after which a connection is told to go: its calls run on, clients open a new
   * connection for new ones (grpc-go's MaxConnectionAge). Default: never.
   */
  maxConnectionAge?: number
  /** ms the calls of a connection told to go may run on before it closes. Default: no end. */
  maxConnectionAgeGrace?: number
  /**
   * ms without a call after which an HTTP/2 connection is told to go and closes (grpc-go's
   * MaxConnectionIdle). Default: idle connections stay.
   */
  maxConnectionIdle?: number
  /** ms a request's headers may take to arrive once begun (default 30000). */
  headerReadTimeout?: number
  /**
   * Keepalive enforcement (grpc-go's EnforcementPolicy.MinTime): a client that pings more
   * often than this, ms, while the server sends it nothing gets GOAWAY ENHANCE_YOUR_CALM
   * after two strikes. Default 300000.
   */
  permitKeepaliveTime?: number
  /** Clients may ping that often on connections without calls too (default false). */
  permitKeepaliveWithoutCalls?: boolean
  /**
   * The server's own keepalive (grpc-go's ServerParameters.Time): a connection from which
   * nothing has arrived for this long, ms, gets a PING, and closes, ending its calls, if
   * the answer does not come within keepaliveTimeout. Default 7200000; 0 turns it off.
   */
  keepaliveTime?: number
  /** ms a keepalive PING may go unanswered (default 20000). */
  keepaliveTimeout?: number
  /**
   * The send budget: at most this many bytes held for clients to read over all
   * connections, whatever the protocol (default 512 MiB; 0: no limit). Past it new streams are refused and the
   * streams whose clients stopped reading are cut, those holding the most first (their
   * calls end RESOURCE_EXHAUSTED).
   */
  sendBudget?: number
  /** The same for each connection (default 64 MiB; 0: no limit). */
  connectionSendBudget?: number
  /**
   * The receive budget: how far the HTTP/2 connection windows granted to clients may grow
   * together beyond each connection's first 4 MiB (default 512 MiB; 0: no limit), so that
   * request streams handlers have not read yet do not stall a connection's other calls.
   * What clients can make the server hold of unread requests; past it, unread request
   * streams stall their connection until they are read.
   */
  receiveBudget?: number
  /** The most one connection's window grows to (default 64 MiB; 0: as far as HTTP/2 allows). */
  connectionReceiveBudget?: number
  maxConcurrentStreams?: number
  maxReceiveMessageSize?: number
  /**
   * CORS: the origins whose browser pages may call ('https://app.example.com', or '*' for
   * any). Without it, browsers let only pages of the server's own origin call.
   */
  cors?: string | string[]
  /** Milliseconds a browser may cache a preflight's answer (whole seconds; two hours by default). */
  corsMaxAge?: number
  /**
   * Read and parse connections on the core's threads instead of the JS thread (default
   * false, or RILLRPC_NODE_OFFLOAD_IO=1): more streamed messages per second when the JS
   * thread is busy, one thread hop more per request and answer.
   */
  offloadIo?: boolean
}

type Reply<Res> = Res | Promise<Res>

/** How a server method is registered: its codec, and its idempotency. */
export interface MethodOptions<Res, Req> extends Codec<Res, Req> {
  /**
   * 'no-side-effects': a unary method also answers Connect's HTTP GET (the message in the
   * URL). Other methods ('unknown', the default, and 'idempotent') answer a GET with 405.
   */
  idempotency?: Idempotency
}

/**
 * A server of gRPC, gRPC-Web and Connect on one port. A handler that throws (or rejects)
 * ends its call with the error's status (an RpcError's code, else UNKNOWN); the server
 * keeps serving.
 */
export declare class Server extends EventEmitter {
  constructor(options?: ServerOptions)
  /** handler(call) returns the response (or a Promise of it); `call.request` is the request. */
  unary<Req = Buffer, Res = Buffer>(path: string, handler: (call: ServerUnaryCall<Req>) => Reply<Res>, options?: MethodOptions<Res, Req>): this
  /** grpc-js style: handler(call, callback). */
  unary<Req = Buffer, Res = Buffer>(
    path: string,
    handler: (call: ServerUnaryCall<Req>, callback: (err: Error | null, value?: Res, trailers?: MetadataInit) => void) => void,
    options?: MethodOptions<Res, Req>
  ): this
  clientStreaming<Req = Buffer, Res = Buffer>(path: string, handler: (call: ServerReadableCall<Req>) => Reply<Res>, options?: MethodOptions<Res, Req>): this
  /** The call ends with OK at `call.end()`, or when an async handler returns. */
  serverStreaming<Req = Buffer, Res = Buffer>(path: string, handler: (call: ServerWritableCall<Req, Res>) => void | Promise<void>, options?: MethodOptions<Res, Req>): this
  bidi<Req = Buffer, Res = Buffer>(path: string, handler: (call: ServerDuplexCall<Req, Res>) => void | Promise<void>, options?: MethodOptions<Res, Req>): this
  handle(path: string, shape: number, handler: ((call: any) => any) | null, options?: MethodOptions<any, any>): this
  /** Pull form: calls of `path` come out of `for await (const call of server)`. */
  addMethod(path: string, shape: number, options?: MethodOptions<any, any>): this
  /**
   * Every method of a service definition, handlers from `impl` by name; a unary method
   * whose definition says NO_SIDE_EFFECTS answers Connect's GET too.
   */
  addService(service: ServiceDefinition, impl?: Record<string, (...args: any[]) => any>): this
  /** Listens on "host:port" (port 0 picks one); returns the bound port. */
  listen(address?: string | number): number
  /** Graceful: no new calls; calls in flight get `graceMs`, then are cancelled. */
  shutdown(graceMs?: number): Promise<void>
  close(): Promise<void>
  /** Incoming calls of methods added with `addMethod` (or without a handler). */
  [Symbol.asyncIterator](): AsyncIterator<ServerDuplexCall<Buffer, Buffer>>
}

/** The version of the rillrpc core. */
export declare const version: string

/** Thrift (Kitex) services from IDL at run time: `rillrpc/thrift`. */
export * as thrift from './thrift'
