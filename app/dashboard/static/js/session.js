// The API key lives in this tab's sessionStorage: gone when the tab closes, never in a URL.

const STORAGE_KEY = "cortex-gateway.api-key";

export function savedKey() {
  return window.sessionStorage.getItem(STORAGE_KEY);
}

export function saveKey(key) {
  window.sessionStorage.setItem(STORAGE_KEY, key);
}

export function forgetKey() {
  window.sessionStorage.removeItem(STORAGE_KEY);
}
