// client-check.mjs: reads the stand-in Plex Media Server (scripts/plex-test-server) with an
// independent client from the npm registry, @ctrl/plex (a port of python-plexapi): identity,
// the server root, library sections with their locations, a scan started through the client and
// the activities it shows. Prints one line per check; exits 1 on the first failure.
// Role: run by tests/test_plex_runner_client.c. Usage: node client-check.mjs MODULES_DIR PORT LOCATION
import { createRequire } from 'module';
import path from 'path';
import { pathToFileURL } from 'url';

const [modules, port, location] = process.argv.slice(2);
const entry = createRequire(path.join(modules, 'x.js')).resolve('@ctrl/plex');
const { PlexServer } = await import(pathToFileURL(entry).href);

function check(ok, what) {
  console.log(`${ok ? 'ok' : 'FAILED'}: ${what}`);
  if (!ok) process.exit(1);
}

const server = new PlexServer(`http://127.0.0.1:${port}`, '');
const identity = await server.query('/identity');
check(typeof identity.MediaContainer.machineIdentifier === 'string' && identity.MediaContainer.version,
  `identity ${identity.MediaContainer.version}`);
await server.connect();
check(server.machineIdentifier === identity.MediaContainer.machineIdentifier, 'connect() reads the root');
const library = await server.library();
const sections = await library.sections();
check(sections.length === 1 && sections[0].title === 'Films' && sections[0].type === 'movie',
  `sections: ${sections.map((s) => `${s.title} (${s.type})`).join(', ')}`);
check(sections[0].locations.length === 1 && sections[0].locations[0].path === location,
  `locations: ${sections[0].locations.map((l) => l.path).join(', ')}`);
await sections[0].update(); // GET /library/sections/1/refresh
let seen = null;
for (let i = 0; i < 200 && !seen; i++) {
  const a = await server.query('/activities');
  seen = (a.MediaContainer.Activity || []).find((x) => x.type === 'library.update.section');
  if (!seen) await new Promise((r) => setTimeout(r, 20));
}
check(seen && seen.Context.librarySectionID === String(sections[0].key),
  `activity ${seen && seen.type} for section ${seen && seen.Context.librarySectionID}`);
const again = await library.sections();
check(typeof again[0].refreshing === 'boolean' || again[0].refreshing !== undefined, 'refreshing flag read');
