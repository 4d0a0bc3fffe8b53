/*
 * plexburst/plexburst.h: umbrella header of libplexburst, the Plex-aware delta sync engine.
 * Include this one; the per-module headers it pulls in document each API.
 */
#ifndef PLEXBURST_H
#define PLEXBURST_H

#include "plexburst/common.h"
#include "plexburst/errors.h"
#include "plexburst/io.h"
#include "plexburst/number.h"
#include "plexburst/compat.h"
#include "plexburst/plex_engine.h"
#include "plexburst/merge.h"
#include "plexburst/fingerprint.h"
#include "plexburst/sqldiff.h"
#include "plexburst/plex.h"
#include "plexburst/run.h"
#include "plexburst/pathmap.h"
#include "plexburst/plexmerge.h"
#include "plexburst/bundle.h"
#include "plexburst/baseline.h"
#include "plexburst/export.h"
#include "plexburst/apply.h"

#endif
