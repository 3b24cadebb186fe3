"""push, pull, clone: exchange versions between a store and a remote.

    push   local refs  ──▶  remote          pull, clone   remote refs  ──▶  local store

1. read the other side's refs (on push, with the version each compare-and-swap checks);
2. plan each ref: up to date, create, move, or refuse -- before any transfer;
3. transfer only the objects the other side lacks, several at a time: data objects
   first, then the manifests naming them;
4. move the refs last: on the remote, each by compare-and-swap against what step 1
   read (a lost race is RefMovedError, exit 5); locally, all in one transaction
   (action `pull`, logged) under the store lock.

So neither side ever holds a ref naming an object it lacks. A second push or pull of
the same versions transfers nothing: the refs already agree.

Refusals protect other people's work:
- push moves a remote ref only from the value this store last saw there (its
  remote-tracking value, recorded by push, pull and clone); --force overrides, and
  the push log records it;
- pull does not move a local ref away from a value the remote lacks: that version
  was made here and never pushed (--force overrides; the log keeps the old value).

The work is in mstore.transfer.push, mstore.transfer.pull (pull, clone) and mstore.transfer.receive
(checked object reception); this module is the entry point the CLI uses.
"""

from __future__ import annotations

from mstore.transfer.pull import PullResult, clone, pull
from mstore.transfer.push import PushResult, RefPush, push

__all__ = ["PullResult", "PushResult", "RefPush", "clone", "pull", "push"]
