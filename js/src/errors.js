/**
 * Errors raised by the client. A command answered with an error envelope
 * (`{"error": {"msg", "type"}}`) rejects with the subclass named after the wire `type`
 * (see {@link errorFromEnvelope}); every error keeps that `type` string.
 * @module errors
 */

/** Base class of every error of this client. */
export class ZnSocketError extends Error {
  /**
   * @param {string} message Error text (the envelope's `msg`).
   * @param {string} [type] Wire type name (the envelope's `type`), e.g. `"ResponseError"`.
   */
  constructor(message, type = 'ZnSocketError') {
    super(message);
    this.name = new.target.name;
    /** @type {string} */
    this.type = type;
  }
}

/** The server refused a value (redis `DataError`, e.g. a value the series codec cannot encode). */
export class DataError extends ZnSocketError {}
/** The server refused the command (redis `ResponseError`, e.g. an insert in the middle of a series). */
export class ResponseError extends ZnSocketError {}
/** The server has no command of that name. */
export class UnknownEventError extends ZnSocketError {}
/** Wrong arguments for a command (wire type `TypeError`). */
export class ArgumentTypeError extends ZnSocketError {}
/** A missing key or field (wire type `KeyError`). */
export class KeyError extends ZnSocketError {}
/** An index out of range (wire type `IndexError`). */
export class IndexError extends ZnSocketError {}
/** A key the gateway's map rules refuse (bad placeholder, or unmapped keys rejected). */
export class KeyMappingError extends ZnSocketError {}
/** TStorage behind the gateway is unreachable; nothing was stored. */
export class TStorageUnavailable extends ZnSocketError {}
/** The token was refused or the command is not allowed for it. */
export class PermissionDeniedError extends ZnSocketError {}
/** The server refused the connection's token. */
export class AuthenticationError extends ZnSocketError {}
/** The server cannot be reached, or the connection dropped while a call was pending. */
export class ConnectionError extends ZnSocketError {}
/** The server did not answer a call in time. */
export class CallTimeoutError extends ZnSocketError {}
/** A request larger than the server accepts (it would drop the connection). */
export class MessageTooLargeError extends ZnSocketError {}

/** @type {Record<string, typeof ZnSocketError>} */
const BY_TYPE = {
  DataError,
  ResponseError,
  UnknownEventError,
  TypeError: ArgumentTypeError,
  KeyError,
  IndexError,
  KeyMappingError,
  TStorageUnavailable,
  PermissionDeniedError,
};

/**
 * The error an error envelope stands for.
 * @param {{error: {msg?: string, type?: string} | string}} envelope An object with an `error` key.
 * @returns {ZnSocketError} An instance of the class mapped from `error.type`
 *   ({@link ZnSocketError} for unknown types).
 */
export function errorFromEnvelope(envelope) {
  const err = envelope.error;
  if (err === null || typeof err !== 'object') {
    return new ZnSocketError(`malformed error envelope: ${JSON.stringify(envelope)}`);
  }
  const type = typeof err.type === 'string' ? err.type : 'ZnSocketError';
  const msg = typeof err.msg === 'string' ? err.msg : 'Unknown error';
  const Cls = BY_TYPE[type] ?? ZnSocketError;
  return new Cls(msg, type);
}

/**
 * True when `value` is an error envelope (an object with an `error` key).
 * @param {unknown} value Any acknowledgement or decoded value.
 * @returns {boolean}
 */
export function isErrorEnvelope(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && 'error' in value;
}
