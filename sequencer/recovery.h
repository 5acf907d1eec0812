/* recovery: bringing a log's state back at startup (DESIGN.md §4 "Startup recovery",
 * docs/write-path.md), or creating a new log.
 *
 * L = the lock's checkpoint, P = the public `checkpoint` object; both must verify under the
 * log's key and origin.
 *  - No L: with `create` and no P, the empty tree is signed, created in the lock and
 *    published; otherwise refuse (never start an empty tree over lost state, never create
 *    over an existing checkpoint). With L, `create` is refused too.
 *  - P ahead of L, same size with another root, or the same tree with a newer P: refuse
 *    (a fork, or another writer).
 *  - L ahead of P: replay staging/<L.size>-<hex L.root> — its tiles (over the stored ones)
 *    must give L's root and P's root at P's size — upload its tiles, then L as `checkpoint`.
 *    Without a bundle the stored tiles must already give L's root.
 *  - Then the right edge is loaded from the hash tiles and must hash to L's root, and the
 *    last partial data tile must hold exactly its entries, in order, hashing to the level-0
 *    hashes.
 * On success the log is ready for rounds. */
#ifndef TEGULA_SEQUENCER_RECOVERY_H
#define TEGULA_SEQUENCER_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "round.h"

/* now_ms is the creation timestamp with create. Returns 0, or -1 with the reason (every
 * failure means: do not start). */
int recovery_run(seq_log *log, bool create, uint64_t now_ms, error *err);

#endif
