"""The integer codes and named table columns the compiled engine's kernels share.

numba reads module-level integers as compile-time constants, so naming a column costs
nothing at run time.
"""

# distribution codes; a distribution is a row (code, p1, p2, p3) of a parameter table
DET, EXP, LOGN, GAMMA, UNIF, HYPER, EMP = range(7)

# event kinds
ARRIVAL, DONE_SERVICE, TIMEOUT, WINDOW = range(4)
RETRY_START = 5        # a client's next attempt, after its backoff
STATION_CHANGE = 6     # a slowdown or outage begins or ends (ident: 2 * window, + 1 at its end)

# transaction states (BACKOFF: the slot holds a retry not yet started)
TRAVEL, WAITING, SERVING, LEFT, BACKOFF = range(5)
FORKED = 5             # an attempt waiting for the join of its parallel calls

# final outcomes of a request, in the order of the stream table's failure columns
# (RATE_LIMITED: a token bucket had no token for it)
REJECTED, TIMED_OUT, ERRORED, ABANDONED, CANCELLED, RATE_LIMITED = range(6)
N_FAILURES = 6

# where a moving transaction goes when not to a station
TO_DONE, TO_ERROR, TO_REJECTED = -1, -2, -3
TO_ONWARD = -4         # on from its station: its risk outcome's station, or a weighted route
TO_RATE_LIMITED = -6   # refused by a token bucket (of its stream or of the station it was sent to)

# a station's state during an outage
UP, REFUSE, HANG = range(3)

# arrival clocks: Poisson/deterministic work over a step profile, a renewal gap, a replayed trace
PROFILE, RENEWAL, TRACE = range(3)

# the retry table: one row per stream (attempts 1 = no retry; budget < 0 = no budget)
RT_ATTEMPTS, RT_BACKOFF, RT_BASE, RT_MAX, RT_JITTER, RT_ON, RT_BUDGET, RT_TOKEN_CAP = range(8)
CONSTANT, EXPONENTIAL, DECORRELATED = range(3)       # backoff
JITTER_NONE, JITTER_FULL, JITTER_EQUAL = range(3)
ON_TIMEOUT, ON_REJECTED, ON_ERROR, ON_RATE_LIMITED = 1, 2, 4, 8          # bits of RT_ON

# the station windows table: one row per slowdown or outage, in the order SimPy schedules them
CW_STATION, CW_AT, CW_END, CW_OUTAGE, CW_VALUE = range(5)   # CW_VALUE: the factor, or REFUSE / HANG

# a station's float accumulators (time integrals and sums, as paysim.observe.StationObserver)
(STF_AREA_IN, STF_AREA_BUSY, STF_WAIT, STF_SOJOURN, STF_SERVICE,
 STF_TIME_ALL, STF_WAIT_ALL, STF_SERVICE_ALL, STF_LAST, STF_WIDTH) = range(10)
STF_SUMS = STF_LAST    # columns zeroed when the window opens: those before STF_LAST

# a station's integer state and counts
(ST_IN, ST_BUSY, ST_ENTERED, ST_REJECTED, ST_STARTED, ST_FINISHED, ST_ERRORED, ST_ABANDONED,
 ST_CANCELLED, ST_DEPARTED, ST_WAITING, ST_HEAD, ST_TAIL, ST_WIDTH) = range(14)
ST_COUNTS = (ST_ENTERED, ST_DEPARTED + 1)   # the counts zeroed when the window opens
# risk outcomes, in the order of paysim.scenario.models.OUTCOMES; a station counts each in
# column ST_OUTCOMES + outcome (zeroed when the window opens)
APPROVE, REVIEW, DECLINE = range(3)
ST_OUTCOMES = ST_WIDTH
ST_WIDTH += 3

# a stream's float accumulators (as paysim.observe.StreamObserver)
SRF_AREA_IN, SRF_LATENCY, SRF_SUCCESS_WAIT, SRF_TIME, SRF_WAIT, SRF_SERVICE, SRF_LAST, SRF_WIDTH = range(8)

# a stream's integer state and counts; SR_FAILED + outcome counts the requests that failed so
(SR_IN, SR_ARRIVED, SR_SUCCEEDED, SR_ATTEMPTS, SR_FINISHED, SR_DEPARTED, SR_FAILED) = range(7)
SR_AT_START = SR_FAILED + N_FAILURES    # in the system when the window opened
SR_RETRIES = SR_AT_START + 1   # attempts that were retries
SR_WIDTH = SR_RETRIES + 1

# a transaction slot's float fields (one row of the txf table per attempt in flight)
(TXF_ENTERED,    # when this attempt entered the system
 TXF_ARRIVED,    # when it arrived at its current station
 TXF_STARTED,    # when its service there started
 TXF_WAIT,       # its total wait in queues so far
 TXF_SERVICE,    # its total service so far
 TXF_ORIGIN,     # when the original request arrived
 TXF_BACKOFF,    # the delay before this attempt (decorrelated backoff grows from it)
 TXF_WIDTH) = range(8)

# a transaction slot's integer fields (the txi table)
(TXI_STREAM,     # its arrival stream
 TXI_STATE,      # TRAVEL, WAITING, SERVING, LEFT or BACKOFF
 TXI_STATION,    # its current station
 TXI_GAVE_UP,    # 1: its client stopped waiting (timed out, or its outcome is counted)
 TXI_GEN,        # the slot's generation: events scheduled for an earlier one are stale
 TXI_NEXT,       # the next and previous in its station's queue
 TXI_PREV,
 TXI_ATTEMPT,    # 1 for the first try
 TXI_ON_CALLER,  # 1: it runs on its caller's thread (an executor's caller_runs)
 TXI_WIDTH) = range(10)

# the event heap's columns (one float table; kinds, idents, generations and sequence numbers
# are integers far below 2**53, so exact)
H_T, H_KIND, H_IDENT, H_GEN, H_SEQ, H_WIDTH = range(6)

# a slot's features for risk scoring (paysim.scenario.features.FEATURES, in order), after the
# float fields; and the forked attempt a parallel call answers (1 + its slot; 0: an attempt),
# and of a forked attempt the calls not yet answered, after the integer fields
N_FEATURES = 1
TXF_FEATURES = TXF_WIDTH
TXF_WIDTH += N_FEATURES
TXI_CALLER, TXI_PENDING = TXI_WIDTH, TXI_WIDTH + 1
TXI_WIDTH += 2

# reply: true, rate limits and caches (paysim.engine.compiled.limits): a station's requests
# refused by its token bucket and services its cache answered, a stream's requests lost after
# their reply (counts zeroed when the window opens); whether a slot's attempt has had its
# reply, and whether the cache answered its last service at a cached station
ST_RATE_LIMITED, ST_CACHE_HITS = ST_WIDTH, ST_WIDTH + 1
ST_WIDTH += 2
SR_BG_FAILED = SR_WIDTH
SR_WIDTH += 1
TXI_REPLIED, TXI_CACHE_HIT = TXI_WIDTH, TXI_WIDTH + 1
TXI_WIDTH += 2

# a station's queue discipline, and how a station's instances share its traffic
FIFO, LIFO, PRIORITY = range(3)
ROUND_ROBIN, RANDOM, LEAST_BUSY, POWER_OF_TWO = range(4)

# held calls (paysim.engine.compiled.calls): a caller's state while its worker waits on its
# calls, two event kinds (a step's timer, a step's retry after its backoff), where a step
# that timed out sends its caller, and per slot where it is in its station's calls
HELD = 6
STEP_TIMEOUT, STEP_RETRY = 7, 8
TO_TIMED_OUT = -5
TXI_STEP, TXI_TRY, TXI_TOKEN, TXI_DETACHED = TXI_WIDTH, TXI_WIDTH + 1, TXI_WIDTH + 2, TXI_WIDTH + 3
TXI_WIDTH += 4
TXF_STEP_BACKOFF = TXF_WIDTH
TXF_WIDTH += 1
# per station: workers held on calls, and its time integral (zeroed when the window opens)
ST_HELD = ST_WIDTH
ST_WIDTH += 1
STF_AREA_HELD = STF_WIDTH
STF_WIDTH += 1
