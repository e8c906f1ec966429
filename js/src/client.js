/**
 * The connection to a znsocket server (our gateway, or any znsocket 0.3.0 server).
 *
 * Every command is one socket.io event in the namespace `/znsocket`, named after the
 * redis-py method, carrying one `[args, kwargs]` argument and answered with an envelope:
 * `{"data": value}` (plus `"type": "set"` for sets) or `{"error": {"msg", "type"}}`.
 * {@link Client#call} sends such a command and resolves to the unwrapped value or rejects
 * with the mapped error (see `errors.js`).
 * @module client
 */

import { io } from 'socket.io-client';
import {
  AuthenticationError,
  CallTimeoutError,
  ConnectionError,
  MessageTooLargeError,
  ZnSocketError,
  errorFromEnvelope,
  isErrorEnvelope,
} from './errors.js';

/** The namespace of the znsocket events. */
export const DEFAULT_NAMESPACE = '/znsocket';
/** Milliseconds a call waits for its acknowledgement by default. */
export const DEFAULT_TIMEOUT_MS = 10000;
// socket.io framing (packet type, namespace, ack id, event name) around the payload.
const FRAME_OVERHEAD = 256;

/**
 * @typedef {object} ConnectOptions
 * @property {string} [token] Sent as socket.io `auth: {token}`; the gateway checks it when auth is on.
 * @property {string} [namespace] Defaults to `/znsocket`.
 * @property {number} [timeout] Milliseconds for the connection and for each call (default 10000).
 * @property {boolean} [reconnection] Reconnect automatically after a drop (default true).
 * @property {string[]} [transports] socket.io transports (default: polling, then upgrade to websocket).
 * @property {boolean} [tryAllTransports] When the first of `transports` fails to open, try
 *   the next (e.g. `transports: ['websocket', 'polling']`: a WebSocket at once, polling
 *   where a proxy refuses WebSockets). Default false.
 */

/**
 * @typedef {'connected' | 'disconnected'} ConnectionStatus
 */

/**
 * Unwrap a success envelope: `data`, as a `Set` when the envelope says `type: "set"`.
 * @param {any} envelope The acknowledgement of a command.
 * @returns {unknown} The command's value.
 * @throws {ZnSocketError} For an error envelope (mapped by type) or a missing/odd answer.
 */
export function unwrap(envelope) {
  if (envelope === undefined || envelope === null) {
    throw new ZnSocketError('No response from server');
  }
  if (isErrorEnvelope(envelope)) throw errorFromEnvelope(envelope);
  if (typeof envelope !== 'object' || !('data' in envelope)) {
    throw new ZnSocketError(`unexpected answer: ${JSON.stringify(envelope).slice(0, 200)}`);
  }
  if ('type' in envelope) {
    if (envelope.type === 'set') return new Set(envelope.data);
    throw new ZnSocketError(`Can not convert type '${envelope.type}'`);
  }
  return envelope.data;
}

/**
 * Turn `znsocket://host:port` into `http://host:port` (as the Python client does); other
 * URLs (`http`, `https`, `ws`, `wss`) pass unchanged.
 * @param {string} url
 * @returns {string}
 */
export function normaliseUrl(url) {
  return url.replace(/^znsocket:\/\//, 'http://').replace(/\/+$/, '');
}

/** A connected znsocket client. Create one with {@link connect}. */
export class Client {
  /**
   * @param {import('socket.io-client').Socket} socket A connected socket.io socket.
   * @param {number} timeout Call timeout in milliseconds.
   */
  constructor(socket, timeout = DEFAULT_TIMEOUT_MS) {
    /** The underlying socket.io socket. */
    this.socket = socket;
    /** Milliseconds each call waits for its answer. */
    this.timeout = timeout;
    /** Largest request the server accepts, from `server_config` (bytes). */
    this.maxMessageSize = 1000000;
    /** @type {Map<string, Set<(data: any) => void>>} */
    this._refresh = new Map();
    /** @type {Set<(status: ConnectionStatus, reason?: string) => void>} */
    this._status = new Set();
    // Calls waiting for an answer: rejected at once when the connection drops.
    /** @type {Set<(err: Error) => void>} */
    this._pending = new Set();
    socket.on('refresh', (msg) => {
      if (msg === null || typeof msg !== 'object' || typeof msg.target !== 'string') return;
      for (const cb of this._refresh.get(msg.target) ?? []) cb(msg.data);
    });
    socket.on('connect', () => this._emitStatus('connected'));
    socket.on('disconnect', (reason) => this._emitStatus('disconnected', String(reason)));
  }

  /** True while the socket is connected. */
  get connected() {
    return this.socket.connected;
  }

  /**
   * Send one command and return its value.
   * @param {string} command The command (redis-py method name, e.g. `"lrange"`).
   * @param {unknown[]} [args] Positional arguments.
   * @param {Record<string, unknown>} [kwargs] Keyword arguments.
   * @returns {Promise<any>} The unwrapped value (`Set` for set results).
   * @throws {ZnSocketError} The mapped error of an error envelope, {@link CallTimeoutError},
   *   {@link ConnectionError} when not connected, {@link MessageTooLargeError}.
   */
  async call(command, args = [], kwargs = {}) {
    return unwrap(await this.emit(command, [args, kwargs]));
  }

  /**
   * Send any event with one data argument and return the raw acknowledgement (no unwrapping).
   * @param {string} event Event name.
   * @param {unknown} [payload] The single data argument (omitted when `undefined`).
   * @returns {Promise<any>} The acknowledgement as received.
   * @throws {ConnectionError | CallTimeoutError | MessageTooLargeError}
   */
  async emit(event, payload) {
    if (!this.socket.connected) {
      throw new ConnectionError(`not connected to the server (${event} not sent)`);
    }
    if (payload !== undefined) {
      const size = byteLength(payload);
      if (size + FRAME_OVERHEAD > this.maxMessageSize) {
        throw new MessageTooLargeError(
          `${event}: request of ${size} bytes exceeds the server's limit of ${this.maxMessageSize} bytes`,
        );
      }
    }
    const args = payload === undefined ? [event] : [event, payload];
    /** @type {(err: Error) => void} */
    let drop = () => {};
    const dropped = new Promise((_, reject) => {
      drop = reject;
    });
    this._pending.add(drop);
    try {
      return await Promise.race([
        this.socket.timeout(this.timeout).emitWithAck(...args),
        dropped,
      ]);
    } catch (exc) {
      if (exc instanceof ZnSocketError) throw exc;
      if (!this.socket.connected) {
        throw new ConnectionError(`connection lost while waiting for ${event}`);
      }
      throw new CallTimeoutError(`${event}: no answer within ${this.timeout} ms`);
    } finally {
      this._pending.delete(drop);
    }
  }

  /**
   * A pipeline: commands queued locally and sent as one `pipeline` event.
   * @returns {Pipeline}
   */
  pipeline() {
    return new Pipeline(this);
  }

  /**
   * Call `callback(data)` for every `refresh` another client (or the server) sends for `target`.
   * @param {string} target Full key, e.g. `"znsocket.List:meters/7/3"`.
   * @param {(data: any) => void} callback Receives the refresh payload (`{indices}`, `{start, stop}`, `{keys}`).
   * @returns {() => void} A function that removes this callback.
   */
  onRefresh(target, callback) {
    let set = this._refresh.get(target);
    if (!set) this._refresh.set(target, (set = new Set()));
    set.add(callback);
    return () => {
      set.delete(callback);
      if (set.size === 0) this._refresh.delete(target);
    };
  }

  /**
   * Tell the other clients that `target` changed (relayed by the server, never echoed back).
   * @param {string} target Full key.
   * @param {Record<string, unknown>} data Refresh payload.
   * @returns {void}
   */
  sendRefresh(target, data) {
    this.socket.emit('refresh', { target, data });
  }

  /**
   * Follow the connection state.
   * @param {(status: ConnectionStatus, reason?: string) => void} callback Called on every change.
   * @returns {() => void} A function that removes this callback.
   */
  onStatus(callback) {
    this._status.add(callback);
    return () => this._status.delete(callback);
  }

  /**
   * Close the connection (no reconnection afterwards).
   * @returns {void}
   */
  close() {
    this.socket.disconnect();
  }

  /** @param {ConnectionStatus} status @param {string} [reason] */
  _emitStatus(status, reason) {
    if (status === 'disconnected') {
      for (const drop of this._pending) drop(new ConnectionError(`connection lost (${reason})`));
    }
    for (const cb of this._status) cb(status, reason);
  }
}

// Redis-like commands as methods: `client.llen(key)` is `client.call("llen", [key])`.
const COMMANDS = /** @type {const} */ ([
  'get', 'set', 'delete', 'exists', 'type', 'copy', 'expire', 'ttl', 'incr', 'decr', 'mget',
  'llen', 'lindex', 'lrange', 'rpush', 'lpush', 'lset', 'lrem', 'linsert', 'lpop',
  'hget', 'hset', 'hmget', 'hkeys', 'hvals', 'hlen', 'hgetall', 'hexists', 'hdel',
  'sadd', 'srem', 'smembers', 'scard', 'sismember',
  'zadd', 'zcard', 'zrange', 'zrangebyscore', 'zrem', 'zcount', 'flushall',
]);
for (const name of COMMANDS) {
  Object.defineProperty(Client.prototype, name, {
    value: /** @this {Client} @param {...unknown} args */ function command(...args) {
      return this.call(name, args);
    },
    writable: true,
    configurable: true,
  });
}

/**
 * @typedef {Client & {
 *   get(name: string): Promise<string|null>, set(name: string, value: string|number): Promise<boolean|null>,
 *   delete(name: string): Promise<number>, exists(name: string): Promise<number>, type(name: string): Promise<string>,
 *   copy(src: string, dst: string): Promise<boolean>, expire(name: string, seconds: number): Promise<number>,
 *   ttl(name: string): Promise<number>, incr(name: string, amount?: number): Promise<number>,
 *   decr(name: string, amount?: number): Promise<number>, mget(...names: string[]): Promise<(string|null)[]>,
 *   llen(name: string): Promise<number>, lindex(name: string, index: number): Promise<string|null>,
 *   lrange(name: string, start: number, end: number): Promise<string[]>, rpush(name: string, value: string): Promise<number>,
 *   lpush(name: string, value: string): Promise<number>, lset(name: string, index: number, value: string): Promise<unknown>,
 *   lrem(name: string, count: number, value: string): Promise<unknown>,
 *   linsert(name: string, where: 'BEFORE'|'AFTER', pivot: string, value: string): Promise<unknown>,
 *   lpop(name: string): Promise<string|null>,
 *   hget(name: string, field: string): Promise<string|null>, hset(name: string, field: string, value: string): Promise<number>,
 *   hmget(name: string, fields: string[]): Promise<(string|null)[]>, hkeys(name: string): Promise<string[]>,
 *   hvals(name: string): Promise<string[]>, hlen(name: string): Promise<number>,
 *   hgetall(name: string): Promise<Record<string, string>>, hexists(name: string, field: string): Promise<number>,
 *   hdel(name: string, field: string): Promise<number>, sadd(name: string, member: string): Promise<unknown>,
 *   srem(name: string, member: string): Promise<number>, smembers(name: string): Promise<Set<string>>,
 *   scard(name: string): Promise<number>, sismember(name: string, member: string): Promise<number>,
 *   zadd(name: string, mapping: Record<string, number>): Promise<number>, zcard(name: string): Promise<number>,
 *   zrange(name: string, start: number, end: number): Promise<string[]>,
 *   zrangebyscore(name: string, min: number|string, max: number|string): Promise<string[]>,
 *   zrem(name: string, ...members: string[]): Promise<number>, zcount(name: string, min: number|string, max: number|string): Promise<number>,
 *   flushall(): Promise<unknown>
 * }} ZnClient A {@link Client} with one method per Redis-like command: `client.cmd(...args)`
 *   is `client.call("cmd", args)` (positional arguments only; use {@link Client#call} for keyword arguments).
 */

/** Commands queued locally and sent together as one `pipeline` event. */
export class Pipeline {
  /** @param {Client} client */
  constructor(client) {
    this.client = client;
    /** @type {[string, [unknown[], Record<string, unknown>]][]} */
    this.commands = [];
  }

  /**
   * Queue a command.
   * @param {string} command Command name.
   * @param {unknown[]} [args] Positional arguments.
   * @param {Record<string, unknown>} [kwargs] Keyword arguments.
   * @returns {Pipeline} This pipeline (chainable).
   */
  add(command, args = [], kwargs = {}) {
    this.commands.push([command, [args, kwargs]]);
    return this;
  }

  /**
   * Send the queued commands and clear the queue.
   * @returns {Promise<unknown[]>} One value per command, in order.
   * @throws {ZnSocketError} The first failing command's error (later commands did not run).
   */
  async execute() {
    const message = this.commands;
    this.commands = [];
    const result = await this.client.call('pipeline', [], { message });
    if (!Array.isArray(result)) throw new ZnSocketError('pipeline answer is not a list');
    return result.map(unwrap);
  }
}

/**
 * Connect to a znsocket server.
 * @param {string} url `http://host:port`, `ws://host:port` or `znsocket://host:port`
 *   (in a browser, `window.location.origin` for the gateway that served the page).
 * @param {ConnectOptions} [options]
 * @returns {Promise<ZnClient>} A connected client.
 * @throws {AuthenticationError} When the server refuses the token.
 * @throws {ConnectionError} When the server cannot be reached within the timeout.
 */
export async function connect(url, options = {}) {
  const namespace = options.namespace ?? DEFAULT_NAMESPACE;
  const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
  const base = normaliseUrl(url);
  const socket = io(base + namespace, {
    auth: options.token === undefined ? undefined : { token: options.token },
    reconnection: options.reconnection ?? true,
    reconnectionDelayMax: 2000,
    timeout,
    transports: options.transports,
    tryAllTransports: options.tryAllTransports ?? false,
    forceNew: true,
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.disconnect();
      reject(new ConnectionError(`Could not connect to ${base} within ${timeout} ms`));
    }, timeout);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('connect_error');
      resolve(undefined);
    });
    socket.on('connect_error', (err) => {
      // A refusal by the server's connect handler is final; transport errors are retried.
      if (/** @type {any} */ (err).data !== undefined || /authenticat/i.test(err.message)) {
        clearTimeout(timer);
        socket.disconnect();
        reject(new AuthenticationError(`the server refused the connection: ${err.message}`));
      }
    });
  });
  const client = /** @type {ZnClient} */ (new Client(socket, timeout));
  const config = await client.emit('server_config');
  if (config && typeof config.max_http_buffer_size === 'number') {
    client.maxMessageSize = config.max_http_buffer_size;
  }
  return client;
}

/**
 * UTF-8 size of the JSON form of a payload (what socket.io sends).
 * @param {unknown} payload
 * @returns {number}
 */
function byteLength(payload) {
  const text = JSON.stringify(payload) ?? '';
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) n += c >= 0x800 && (c < 0xd800 || c > 0xdfff) ? 2 : 1;
  }
  return n;
}
