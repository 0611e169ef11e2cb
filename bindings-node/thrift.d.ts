// TypeScript declarations for rillrpc/thrift: Thrift services from an IDL loaded at run
// time, no code generation (needs the optional peer dependency thriftrw).
/// <reference types="node" />
import type {
  Channel,
  CallOptions,
  UnaryResponse,
  ResponseStream,
  RequestStream,
  BidiStream,
  Server,
  ServerUnaryCall,
  ServerReadableCall,
  ServerWritableCall,
  ServerDuplexCall,
  MetadataInit
} from './index'

/** A Thrift struct as JS sees it: fields by name (absent optional fields read as null). */
export type ThriftValue = Record<string, any>

/** `(streaming.mode="...")`: the call shape each makes. No annotation: PingPong (unary). */
export declare const MODES: {
  readonly unary: 0
  readonly client: 1
  readonly server: 2
  readonly bidirectional: 3
}

/** The thriftrw version this binding is tested with. */
export declare const THRIFTRW_VERSION: string

export interface ThriftField {
  id: number
  name: string
  /** The field's type name ('Request', 'i32', ...). */
  type: string
}

/** One function of a Thrift service, as rillrpc calls and serves it. */
export interface ThriftMethod {
  name: string
  service: string
  /** `/<package>.<Service>/<Method>` (or what `methodPath` chose). */
  path: string
  /** 'pingpong' (no annotation), 'unary', 'client', 'server' or 'bidirectional'. */
  mode: 'pingpong' | 'unary' | 'client' | 'server' | 'bidirectional'
  /** The call shape (SHAPE). */
  shape: 0 | 1 | 2 | 3
  requestStream: boolean
  responseStream: boolean
  oneway: boolean
  /** The function's annotations, e.g. { 'streaming.mode': 'server' }. */
  annotations: Record<string, string>
  /** The function's arguments, in order. */
  args: ThriftField[]
  /** The return type's name, or 'void'. */
  returns: string
  /** Declared exceptions (the result struct's fields 1..n). */
  exceptions: ThriftField[]
  /** Streaming methods: the request and response struct names. */
  requestType?: string
  responseType?: string
  /**
   * The message codec: for a streaming method the bare request/response structs; for a
   * PingPong method its args struct (fields by argument name) and result struct
   * ({ success } or { <exception field>: value }).
   */
  encodeRequest(value: ThriftValue): Buffer
  decodeRequest(bytes: Buffer): ThriftValue
  encodeResponse(value: ThriftValue): Buffer
  decodeResponse(bytes: Buffer): ThriftValue
}

export interface ThriftService {
  name: string
  /** The package of the method paths (the last component of `namespace go`). */
  package: string
  /** `<package>.<Service>` */
  fullName: string
  methods: Record<string, ThriftMethod>
}

export interface ThriftIdl {
  package: string
  services: Record<string, ThriftService>
  /** The thriftrw model: types by name (`types.Request`, exception constructors, ...). */
  types: any
}

export interface LoadOptions {
  /** The package of the method paths, in place of the one `namespace go` gives. */
  package?: string
  /** The path each method is called and served at (default `/<package>.<service>/<method>`). */
  methodPath?: (m: { package: string; service: string; method: string }) => string
  /** Options for thriftrw's `Thrift` (default: strict false, allowOptionalArguments true). */
  thriftrw?: Record<string, unknown>
  /** parse(): the name the source goes by (its package when it has no `namespace go`). */
  filename?: string
}

/** Loads an IDL file and its includes. */
export declare function load(file: string, options?: LoadOptions): ThriftIdl
/** Loads IDL text (no includes). */
export declare function parse(source: string, options?: LoadOptions): ThriftIdl

/**
 * A declared Thrift exception as an Error: a client rejects with it when a PingPong
 * result carries one; a handler throws it (or an instance of the exception type from
 * `idl.types`) to answer with it. Its fields are also copied onto the error.
 */
export declare class ThriftException extends Error {
  constructor(exception: string, value?: ThriftValue)
  /** The exception type's name. */
  exception: string
  value: ThriftValue
  [field: string]: any
}

/** Call options of a Thrift call: the codec and content subtype are the stub's. */
export type ThriftCallOptions = Omit<CallOptions<ThriftValue, ThriftValue>, 'serialize' | 'deserialize' | 'contentSubtype'>

/**
 * A client with a method per function (also by its lowerCamel name):
 * PingPong methods `(...args, options?) => Promise<value>` (rejecting with a
 * ThriftException for a declared exception, an RpcError or BizStatusError otherwise);
 * server streaming `(request, options?) => Readable`; client streaming `(options?) =>
 * Writable` with `response`; bidirectional `(options?) => Duplex`.
 */
export declare class Client {
  constructor(channel: Channel | string, service: ThriftService, defaults?: ThriftCallOptions)
  readonly channel: Channel
  close(): void
  [method: string]:
    | ((...args: any[]) => UnaryResponse<any> | ResponseStream<any> | RequestStream<any, any> | BidiStream<any, any>)
    | any
}

/** A PingPong handler's call: `request` is the one argument, `args` every argument by name. */
export interface ThriftUnaryCall extends ServerUnaryCall<any> {
  readonly args: ThriftValue
}

export type ThriftHandler =
  | ((call: ThriftUnaryCall) => any)
  | ((call: ThriftUnaryCall, callback: (err: Error | null, value?: any, trailers?: MetadataInit) => void) => void)
  | ((call: ServerReadableCall<ThriftValue>) => any)
  | ((call: ServerWritableCall<ThriftValue, ThriftValue>) => void | Promise<void>)
  | ((call: ServerDuplexCall<ThriftValue, ThriftValue>) => void | Promise<void>)

/**
 * Registers every method of `service` on `server` (gRPC+thrift, TTHeader Streaming and
 * PingPong on its one port), handlers from `impl` by name or lowerCamel name; a method
 * without one uses the pull form. Returns the server.
 */
export declare function addService(server: Server, service: ThriftService, impl?: Record<string, ThriftHandler>): Server
