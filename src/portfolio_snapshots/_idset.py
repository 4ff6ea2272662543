"""`IdSet`: an exact set of 128-bit ids in about 20 bytes an id, for one run's stream.

A run remembers the id of every portfolio it handed out (so that a repository yielding an id
twice fails the second, and a re-opened stream skips the ids already done). A Python `set` of
128-bit ints takes about 78 bytes an id; past its first 131,072 ids, `IdSet` takes about 20.

How:

- Up to `recent_limit` ids, it is a plain `set` of ints: a run of that size costs what it
  cost before in memory (10 MB at the limit), and in time but for a method call an id.
- At the limit, every id is packed as its 16 bytes into buckets (`bytearray`), chosen by the
  top bits of the hash of those bytes (salted per process, whatever the ids look like), and
  the set is emptied. From then on each new id goes straight to its bucket. Buckets come in
  tables of `first_buckets`, then 16 times as many each time the ids reach `bucket_load` a
  bucket on average; nothing is ever moved.
- In front of the buckets, a Bloom filter (two bits in one byte an id, 16 to 32 bits of
  filter an id) answers "new" for most new ids in one byte test, and takes the new id's bits
  on the way. Only when both bits are already set is the id looked for, in its bucket of each
  table (`bytearray.find`, keeping only matches at a multiple of 16 bytes).

The filter only decides whether to look; every answer comes from the ids themselves, so there
is no false positive and no false negative, whatever the ids (random v4, time-ordered,
sequential).

Why buckets and not sorted runs: in pure Python the time goes into the interpreter's steps
and cache misses for each id, and sorting a batch of ids, or merging runs, takes more of both
per id than one append to a bucket (see docs/performance.md, "Memory").
"""

from __future__ import annotations

import sys
from itertools import combinations, islice, repeat
from struct import iter_unpack
from typing import TYPE_CHECKING, Final

from portfolio_snapshots._errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["IdSet"]

_RECENT_LIMIT: Final = 1 << 17  # ids kept in a plain set before they are packed
_FIRST_BUCKETS: Final = 1 << 12  # buckets of the first table
_BUCKET_LOAD: Final = 256  # ids a bucket holds on average when its table is full
_TABLE_GROWTH: Final = 16  # each new table has this many times the buckets of the last
_FILTER_BYTES: Final = 1 << 19  # the filter's first size: 4 Mibit, 262,144 ids at 16 bits
_FILTER_BITS_PER_ID: Final = 16  # the filter doubles before it has fewer bits an id
_KEY: Final = 16  # bytes of an id
_HASH_BITS: Final = sys.hash_info.width  # 64 (32 on a 32-bit Python)
_PAIR_SHIFT: Final = _HASH_BITS - 5
# The 28 pairs of bits of a byte and 4 of them again: the hash's top 5 bits, as a number from
# -16 to 15 (``h >> _PAIR_SHIFT``), index one directly.
_PAIRS: Final = tuple([(1 << a) | (1 << b) for a, b in combinations(range(8), 2)] * 2)[:32]


class IdSet:
    """A set of ints from 0 to 2**128 - 1 (a `uuid.UUID`'s `int`) that packs them.

    Only adding and membership: ids are never removed. `add` tells whether the id is new, so
    a caller needs one call per id.

    Args:
        recent_limit: Ids kept in a plain set before they are packed (at least 1).
        first_buckets: Buckets of the first table of packed ids (a power of two).
        bucket_load: Average ids a bucket holds when its table is full (at least 1).
        filter_bytes: The filter's first size in bytes (a power of two); it doubles as the
            set grows. The larger it starts, the fewer bits its doublings leave set.
        prefilter: Whether to keep the Bloom filter. Without it every id is looked for in
            the packed ones (for tests of that search, and to measure what the filter saves).

    Raises:
        InvalidInputError: A tuning argument is out of range.
    """

    __slots__ = (
        "_bucket_load",
        "_filter",
        "_filter_bytes",
        "_filtering",
        "_growth_at",
        "_mask",
        "_next_buckets",
        "_packed",
        "_recent",
        "_recent_limit",
        "_shift",
        "_table",
        "_tables",
    )

    def __init__(
        self,
        *,
        recent_limit: int = _RECENT_LIMIT,
        first_buckets: int = _FIRST_BUCKETS,
        bucket_load: int = _BUCKET_LOAD,
        filter_bytes: int = _FILTER_BYTES,
        prefilter: bool = True,
    ) -> None:
        """Make an empty set."""
        if recent_limit < 1 or bucket_load < 1:
            msg = f"recent_limit and bucket_load must be 1 or more: {recent_limit}, {bucket_load}"
            raise InvalidInputError(msg)
        for name, value in (("first_buckets", first_buckets), ("filter_bytes", filter_bytes)):
            if value < 1 or value & (value - 1):
                msg = f"{name} must be a power of two, got {value}"
                raise InvalidInputError(msg)
        self._recent: set[int] = set()
        self._recent_limit = recent_limit
        # Each table is its buckets with the shift that picks one from a hash: the hash's
        # top bits, as a signed number, which indexes the list from either end.
        self._tables: list[tuple[int, list[bytearray]]] = []
        self._table: list[bytearray] = []  # the last table, which takes the new ids
        self._shift = _HASH_BITS
        self._next_buckets = first_buckets
        self._bucket_load = bucket_load
        self._packed = 0
        self._growth_at = 0  # packed ids at which the filter or the tables must grow
        self._filtering = prefilter
        self._filter_bytes = filter_bytes
        # `_mask` is the filter's size in bytes minus one, and 0 until the first packing:
        # the hot path's one test of whether the ids are packed.
        self._filter = bytearray()
        self._mask = 0

    def __len__(self) -> int:
        """Return how many ids the set holds."""
        return len(self._recent) + self._packed

    def __contains__(self, number: object) -> bool:
        """Return whether `number` is in the set (False for anything but an int in range).

        Args:
            number: The id, as an int.

        Returns:
            Whether `add` was called with it.
        """
        if type(number) is not int or not 0 <= number < 1 << 128:
            return False
        if not self._mask:
            return number in self._recent
        key = number.to_bytes(_KEY)
        h = hash(key)
        bits = _PAIRS[h >> _PAIR_SHIFT]
        return self._filter[h & self._mask] & bits == bits and self._is_packed(key, h)

    def add(self, number: int) -> bool:
        """Add `number` to the set; return True if it was not in it yet.

        Args:
            number: The id, an int from 0 to 2**128 - 1 (a `uuid.UUID`'s `int`).

        Returns:
            True if `number` was new (it is now in the set), False if it was already there.

        Raises:
            OverflowError: `number` is negative or does not fit in 128 bits.
        """
        mask = self._mask
        if mask:
            key = number.to_bytes(_KEY)
            h = hash(key)
            filter_ = self._filter
            i = h & mask
            byte = filter_[i]
            bits = _PAIRS[h >> _PAIR_SHIFT]
            if byte & bits == bits:
                if self._is_packed(key, h):
                    return False
            else:
                filter_[i] = byte | bits
            self._table[h >> self._shift] += key
            self._packed += 1
            if self._packed >= self._growth_at:
                self._grow()
            return True
        recent = self._recent
        if number in recent:
            return False
        if number >> 128:  # -1 for a negative int, more for one past 128 bits
            msg = f"an id must be an int from 0 to 2**128 - 1, got {number}"
            raise OverflowError(msg)
        recent.add(number)
        if len(recent) >= self._recent_limit:
            self._pack()
        return True

    def update(self, other: IdSet) -> None:
        """Add every id of `other` to this set.

        Args:
            other: Another set; it is left as it was.
        """
        add = self.add
        for number in other._numbers():
            add(number)

    def _numbers(self) -> Iterator[int]:
        """Every id of the set, one by one (for `update`, which is rare): no list of them."""
        # Copies of the set and of each bucket: nothing read can change under the reader.
        yield from list(self._recent)
        for _, table in self._tables:
            for bucket in table:
                for (key,) in iter_unpack("16s", bytes(bucket)):
                    yield int.from_bytes(key)

    def _is_packed(self, key: bytes, h: int) -> bool:
        """Whether `key`, whose hash is `h`, is among the packed ids."""
        for shift, table in self._tables:
            bucket = table[h >> shift]
            at = bucket.find(key)
            while at >= 0:
                if not at % _KEY:
                    return True
                # A match across two neighbouring ids is no match: look on from the next byte.
                at = bucket.find(key, at + 1)
        return False

    def _pack(self) -> None:
        """Pack the plain set's ids into a first table and a new filter; empty the set."""
        recent = self._recent
        self._packed = len(recent)
        if self._filtering:
            self._filter = bytearray(self._filter_bytes)
            self._mask = self._filter_bytes - 1
        else:  # every bit set, never grown: every id is looked for
            self._filter, self._mask = bytearray(b"\xff\xff"), 1
        self._new_table()
        self._grow()
        filter_, mask, table, shift = self._filter, self._mask, self._table, self._shift
        # The ids' bytes, a few thousand at a time in a row: the set's ints lie anywhere in
        # memory, and all of their bytes at once would be a spike of 50 bytes an id.
        numbers = iter(recent)
        while chunk := b"".join(map(int.to_bytes, islice(numbers, 4096), repeat(_KEY))):
            for (key,) in iter_unpack("16s", chunk):
                h = hash(key)
                filter_[h & mask] |= _PAIRS[h >> _PAIR_SHIFT]
                table[h >> shift] += key
        recent.clear()

    def _new_table(self) -> None:
        """Start the next table, which takes the new ids from now on."""
        buckets = self._next_buckets
        self._next_buckets = buckets * _TABLE_GROWTH
        self._table = [bytearray() for _ in range(buckets)]
        self._shift = _HASH_BITS - buckets.bit_length() + 1
        self._tables.append((self._shift, self._table))

    def _grow(self) -> None:
        """Double the filter, or start a table, as the packed ids require; set the next time.

        The filter keeps at least `_FILTER_BITS_PER_ID` bits for each packed id. It is doubled
        by concatenating it to itself: an id's byte is the hash's low bits (``h & mask``), so
        with one more bit it is either where it was or as far again, and both copies have its
        bits. No id needs to be read again. A table is full at `bucket_load` ids a bucket.
        """
        packed = self._packed
        if self._filtering:
            while packed * _FILTER_BITS_PER_ID >= len(self._filter) * 8:
                self._filter = self._filter + self._filter
                self._mask = self._mask * 2 + 1
        capacity = sum(len(table) for _, table in self._tables) * self._bucket_load
        if packed >= capacity:
            self._new_table()
            capacity += len(self._table) * self._bucket_load
        filter_room = len(self._filter) * 8 // _FILTER_BITS_PER_ID if self._filtering else capacity
        self._growth_at = min(filter_room, capacity)
