// End-to-end run of drey's web UI in headless Debian Chromium (playwright-core), driven by
// crates/drey/tests/ui.rs: open the page, wait for the live flow, play it live until the
// video's currentTime passes 3 s (after a search by label), select a range on the timeline with the mouse, export it
// as MP4. Saves a screenshot per step in OUT and prints the downloaded file's path as the
// last line of JSON. Usage: node e2e/run.mjs BASE_URL OUT_DIR STREAM_LABEL
// With DREY_KEY_ID and DREY_KEY_SECRET set, the server is expected to refuse anonymous
// readers: the page asks for a key, the script signs in with it, and everything after runs
// on signed URLs.
import { chromium } from 'playwright-core';

const [base, out, label] = process.argv.slice(2);
const step = async (page, n, name) => {
  await page.screenshot({ path: `${out}/${n}-${name}.png`, fullPage: true });
  console.error(`step ${n}: ${name}`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => console.error(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`page error: ${e}`));

  await page.goto(`${base}/`, { waitUntil: 'load' });
  await step(page, 1, 'opened');

  const keyId = process.env.DREY_KEY_ID;
  if (keyId) {
    // Anonymous reads are refused, so the page asks for a key.
    await page.locator('#auth:not([hidden])').waitFor({ timeout: 10000 });
    const reason = await page.textContent('#auth-reason');
    if (!/authentication required/i.test(reason)) throw new Error(`sign-in prompt says: ${reason}`);
    await step(page, 1, 'sign-in-asked');
    // A wrong secret is refused and leaves the page signed out.
    await page.fill('#auth-id', keyId);
    await page.fill('#auth-secret', 'not-the-secret');
    await page.click('#auth-submit');
    await page.locator('#auth-reason', { hasText: 'Not signed in' }).waitFor({ timeout: 10000 });
    await page.fill('#auth-secret', process.env.DREY_KEY_SECRET);
    await page.click('#auth-submit');
    await page.locator('#auth[hidden]').waitFor({ state: 'attached', timeout: 10000 });
    await page.locator('#signed-in:not([hidden])', { hasText: keyId }).waitFor({ timeout: 5000 });
    await step(page, 1, 'signed-in');
  }

  // The live flow appears in the list (the page refreshes it every 4 s).
  const live = page.locator('.flow[data-live="true"][data-playable="true"]', { hasText: label }).first();
  await live.waitFor({ timeout: 30000 });
  await step(page, 2, 'flow-listed');

  // Search: by label keeps it, by something else hides it.
  await page.fill('#search', 'no-such-label-anywhere');
  await page.locator('#list', { hasText: 'No flow matches' }).waitFor({ timeout: 5000 });
  await page.fill('#search', label);
  await live.waitFor({ timeout: 5000 });

  await live.click();
  await page.locator('#flow:not([hidden])').waitFor();
  await page.click('#live');
  await page.waitForFunction(() => document.querySelector('#player').currentTime > 3, null, { timeout: 45000 });
  await step(page, 3, 'playing-live');

  // Select a range by dragging across the middle of the content on the timeline.
  await page.click('#fit');
  await page.waitForTimeout(500);
  const box = await page.locator('#timeline').boundingBox();
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width * 0.2, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, y, { steps: 8 });
  await page.mouse.move(box.x + box.width * 0.75, y, { steps: 8 });
  await page.mouse.up();
  const start = await page.inputValue('#sel-start');
  const end = await page.inputValue('#sel-end');
  if (!start || !end) throw new Error('dragging on the timeline selected nothing');
  await step(page, 4, 'range-selected');

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-mp4')]);
  const file = `${out}/${download.suggestedFilename() || 'export.mp4'}`;
  await download.saveAs(file);
  await step(page, 5, 'exported');

  // The selection plays too.
  await page.click('#play-range');
  await page.waitForFunction(() => document.querySelector('#player').currentTime > 1, null, { timeout: 30000 });
  await step(page, 6, 'playing-selection');

  await page.click('#new-stream');
  await step(page, 7, 'new-stream');
  const url = await page.textContent('#publish-url');

  console.log(JSON.stringify({ file, start, end, publish_url: url }));
} finally {
  await browser.close();
}
