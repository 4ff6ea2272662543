"""`IdSet`: an exact set of 128-bit ids in about 20 bytes an id, for one run's stream.

A run remembers the id of every portfolio it handed out (so that a repository yielding an id
twice fails the second, and a re-opened stream skips the ids already done). A Python `set` of
128-bit ints takes about 78 bytes an id; `IdSet` gives the same answers in about a quarter.

How:

- The most recent ids (up to `recent_limit`) are kept in a plain `set` of their 16 bytes, so
  a small run costs what a `set` costs.
- When that set is full, its ids are packed as 16 raw bytes each into buckets (`bytearray`),
  chosen by their hash, in tables of `first_buckets`, then 16 times as many buckets each time
  a table is full (at `bucket_load` ids a bucket on average). Nothing is ever moved.
- From the first packing on, a Bloom filter over every id (two bits in one byte an id, 16 to
  32 bits of filter an id) answers "new" for most new ids in one byte test, and takes the id's
  bits on the way. Only when both bits are set is the id looked for in the plain set, then in
  its bucket of each table (`bytearray.find`, at a multiple of 16).

The filter only decides whether to look; every answer comes from the ids themselves, so there
is no false positive and no false negative, whatever the ids (random v4, time-ordered,
sequential) and whatever their hashes (the hash of the 16 bytes, salted per process).
"""

from __future__ import annotations

from itertools import combinations, repeat
from struct import iter_unpack
from typing import Final

from portfolio_snapshots._errors import InvalidInputError

__all__ = ["IdSet"]

_RECENT_LIMIT: Final = 1 << 15  # ids in the plain set before they are packed
_FIRST_BUCKETS: Final = 1 << 12  # buckets of the first table
_BUCKET_LOAD: Final = 256  # ids a bucket holds on average when its table is full
_TABLE_GROWTH: Final = 16  # each new table has this many times the buckets of the last
_FIRST_FILTER_BYTES: Final = 1 << 19  # 4 Mibit: 262,144 ids at 16 bits each
_FILTER_BITS_PER_ID: Final = 16  # the filter doubles before ids would exceed this
_BUCKET_SHIFT: Final = 45  # a bucket is chosen by the hash's bits from 45 up
_PAIR_SHIFT: Final = 40  # the two bits of a byte by the hash's bits 40 to 44
_KEY: Final = 16  # bytes of an id
# The 28 pairs of bits of a byte, and 4 of them again, so that 5 bits of the hash choose one.
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
        prefilter: Whether to keep the Bloom filter. Without it every id not in the plain
            set is looked for in the packed ones (for tests of that search, and to measure
            what the filter saves).

    Raises:
        InvalidInputError: A tuning argument is out of range.
    """

    __slots__ = (
        "_bucket_load",
        "_filter",
        "_filter_bytes",
        "_filtering",
        "_mask",
        "_next_buckets",
        "_packed",
        "_pending",
        "_recent",
        "_recent_limit",
        "_room",
        "_tables",
    )

    def __init__(
        self,
        *,
        recent_limit: int = _RECENT_LIMIT,
        first_buckets: int = _FIRST_BUCKETS,
        bucket_load: int = _BUCKET_LOAD,
        filter_bytes: int = _FIRST_FILTER_BYTES,
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
        self._recent: set[bytes] = set()
        self._pending = bytearray()  # the recent ids' bytes in order, once there is a filter
        self._recent_limit = recent_limit
        self._tables: list[list[bytearray]] = []
        self._next_buckets = first_buckets
        self._bucket_load = bucket_load
        self._room = 0  # ids the last table takes before the next one is started
        self._packed = 0
        self._filtering = prefilter
        self._filter_bytes = filter_bytes
        # `_mask` is the filter's size in bytes minus one, and 0 until the first packing:
        # the hot path's one test of whether there is a filter to ask.
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
        if number in self._recent:
            return True
        if not self._packed:
            return False
        key = number.to_bytes(_KEY)
        h = hash(key)
        bits = _PAIRS[(h >> _PAIR_SHIFT) & 31]
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
        recent = self._recent
        mask = self._mask
        if mask:
            key = number.to_bytes(_KEY)
            h = hash(key)
            filter_ = self._filter
            i = h & mask
            byte = filter_[i]
            bits = _PAIRS[(h >> _PAIR_SHIFT) & 31]
            if byte & bits == bits:
                if number in recent or self._is_packed(key, h):
                    return False
            else:
                filter_[i] = byte | bits
            self._pending += key
        elif number in recent:
            return False
        elif number >> 128:  # -1 for a negative int, more for one past 128 bits
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

    def _numbers(self) -> list[int]:
        """Every id of the set (for `update`, which is rare)."""
        numbers = list(self._recent)
        for table in self._tables:
            for bucket in table:
                numbers.extend(int.from_bytes(key) for (key,) in iter_unpack("16s", bucket))
        return numbers

    def _is_packed(self, key: bytes, h: int) -> bool:
        """Whether `key`, whose hash is `h`, is among the packed ids."""
        index = h >> _BUCKET_SHIFT
        for table in self._tables:
            bucket = table[index & (len(table) - 1)]
            at = bucket.find(key)
            while at >= 0:
                if not at % _KEY:
                    return True
                # A match across two neighbouring ids is no match: look on from the next byte.
                at = bucket.find(key, at + 1)
        return False

    def _pack(self) -> None:
        """Move the recent ids into the buckets of the last table (and the first time, a filter)."""
        recent = self._recent
        count = len(recent)
        if self._room < count:
            buckets = self._next_buckets
            self._tables.append([bytearray() for _ in range(buckets)])
            self._room = buckets * self._bucket_load
            self._next_buckets = buckets * _TABLE_GROWTH
        self._room -= count
        table = self._tables[-1]
        last = len(table) - 1
        # The ids are read from bytes that lie in a row, not from the set's ints, which lie
        # anywhere in memory: here a cache miss costs more than the rest of the loop.
        if self._mask:
            for (key,) in iter_unpack("16s", self._pending):
                table[(hash(key) >> _BUCKET_SHIFT) & last] += key
        else:
            self._start_filter(count)
            filter_, mask = self._filter, self._mask
            pending = b"".join(map(int.to_bytes, recent, repeat(_KEY)))
            for (key,) in iter_unpack("16s", pending):
                h = hash(key)
                filter_[h & mask] |= _PAIRS[(h >> _PAIR_SHIFT) & 31]
                table[(h >> _BUCKET_SHIFT) & last] += key
        self._packed += count
        recent.clear()
        self._pending = bytearray()
        self._grow_filter()

    def _start_filter(self, unpacked: int) -> None:
        """Make the filter, empty, at the first packing, for `unpacked` ids and more."""
        if self._filtering:
            self._filter = bytearray(self._filter_bytes)
            self._mask = self._filter_bytes - 1
            self._grow_filter(unpacked)
        else:
            # Every bit set and never grown: every id is looked for.
            self._filter, self._mask = bytearray(b"\xff\xff"), 1

    def _grow_filter(self, unpacked: int = 0) -> None:
        """Double the filter until it has `_FILTER_BITS_PER_ID` bits for every id it may hold.

        It may hold the packed ids, the `unpacked` ones and a full set of recent ones. The
        filter is doubled by concatenating it to itself: an id's byte is the hash's low bits
        (``h & mask``), so with one more bit it is either where it was or as far again, and
        both copies have its bits. No id needs to be read again.
        """
        if not self._filtering:
            return
        ids = self._packed + unpacked + self._recent_limit
        while ids * _FILTER_BITS_PER_ID > len(self._filter) * 8:
            self._filter = self._filter + self._filter
            self._mask = self._mask * 2 + 1
