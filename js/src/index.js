/**
 * JavaScript client of the znsocket protocol, for the TStorage gateway and any znsocket
 * 0.3.0 server: Redis-like commands, `List`/`Dict` proxies with refresh callbacks, and
 * time-window reads of gateway series.
 *
 * ```js
 * import { connect, List, timeseries, dashboard } from 'tstorage-gateway-znsocket';
 * const client = await connect('http://127.0.0.1:5000', { token });
 * const voltage = new List(client, 'meters/7/3');
 * await voltage.push(230.5);
 * const last100 = await timeseries.latest(client, 'meters/7/3', 100);   // ts:* events
 * const series = await dashboard.listSeries(client);                    // dashboard:series
 * ```
 * @module tstorage-gateway-znsocket
 */

export { Client, Pipeline, connect, normaliseUrl, unwrap, DEFAULT_NAMESPACE, DEFAULT_TIMEOUT_MS } from './client.js';
export { List } from './list.js';
export { Dict } from './dict.js';
export { dumps, loads } from './json.js';
export { LIST_PREFIX, DICT_PREFIX } from './values.js';
export * from './errors.js';
export * as timeseries from './timeseries.js';
export * as dashboard from './dashboard.js';
