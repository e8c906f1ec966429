// The connection/outage display: a status pill in the header and a banner that says
// plainly what is unreachable.

export class StatusView {
  /**
   * @param {HTMLElement} pill
   * @param {HTMLElement} banner
   */
  constructor(pill, banner) {
    this.pill = pill;
    this.banner = banner;
    /** @type {string|null} Why the gateway is unreachable, or null. */
    this.gateway = 'connecting';
    /** @type {string|null} What the gateway said about TStorage, or null when fine. */
    this.tstorage = null;
    this.render();
  }

  /** @param {string|null} reason */
  setGateway(reason) {
    this.gateway = reason;
    this.render();
  }

  /** @param {string|null} message */
  setTStorage(message) {
    if (message === this.tstorage) return;
    this.tstorage = message;
    this.render();
  }

  render() {
    let state = 'ok';
    let text = 'connected';
    let banner = '';
    if (this.gateway === 'connecting') {
      state = 'connecting';
      text = 'connecting…';
    } else if (this.gateway !== null) {
      state = 'gateway-down';
      text = 'gateway unreachable';
      banner = `Gateway unreachable (${this.gateway}). Reconnecting… The chart shows the last data received.`;
    } else if (this.tstorage !== null) {
      state = 'tstorage-down';
      text = 'TStorage unreachable';
      banner = `TStorage unreachable: ${this.tstorage.replace(/[.\s]*$/, '.')} The chart shows the last data received; new points appear once TStorage is back.`;
    }
    this.pill.dataset.state = state;
    this.pill.textContent = text;
    this.banner.textContent = banner;
    this.banner.hidden = banner === '';
  }
}
