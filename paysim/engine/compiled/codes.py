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
WORKERS_CHANGE = 7     # a worker schedule's change (ident: its row of the schedule table)
BATCH_TICK = 8         # a batch station's clock timer (ident: the station)
BATCH_DEADLINE = 9     # a batch's first-item timer (ident: the batch record, gen: the record's reuses)
BATCH_DONE = 10        # a worker has processed a batch (ident: the batch record)
POOL_KEEP_ALIVE = 11   # an executor pool's keep-alive timer (ident: the station row)
BATCH_ITEM = 12        # never on the heap: the next item of a finished batch goes on
# (13, 14: a held call step's timer and retry, calls below; 15: shared cores, cores.py)
CORES_DONE = 15        # a station's next completion on shared cores is due (ident: the station, gen: its version)

# transaction states (BACKOFF: the slot holds a retry not yet started)
TRAVEL, WAITING, SERVING, LEFT, BACKOFF = range(5)
FORKED = 5             # an attempt waiting for the join of its parallel calls

# final outcomes of a request, in the order of the stream table's failure columns
REJECTED, TIMED_OUT, ERRORED, ABANDONED, CANCELLED = range(5)
BREAKER_OPEN = 5       # a call's circuit breaker refused it
RATE_LIMITED = 6       # a token bucket had no token for it
N_FAILURES = 7

# where a moving transaction goes when not to a station
TO_DONE, TO_ERROR, TO_REJECTED = -1, -2, -3
TO_ONWARD = -4         # on from its station: its risk outcome's station, or a weighted route
TO_RATE_LIMITED = -7   # (-5, -6: see below) refused by a token bucket (of its stream or of the station it was sent to)

# a station's state during an outage
UP, REFUSE, HANG = range(3)

# arrival clocks: Poisson/deterministic work over a step profile, a renewal gap, a replayed trace
PROFILE, RENEWAL, TRACE = range(3)

# the retry table: one row per stream (attempts 1 = no retry; budget < 0 = no budget)
RT_ATTEMPTS, RT_BACKOFF, RT_BASE, RT_MAX, RT_JITTER, RT_ON, RT_BUDGET, RT_TOKEN_CAP = range(8)
CONSTANT, EXPONENTIAL, DECORRELATED = range(3)       # backoff
JITTER_NONE, JITTER_FULL, JITTER_EQUAL = range(3)
ON_TIMEOUT, ON_REJECTED, ON_ERROR = 1, 2, 4          # bits of RT_ON
ON_BREAKER_OPEN, ON_RATE_LIMITED = 8, 16             # (a call's breaker, a token bucket refused it)

# the station windows table: one row per slowdown or outage, in the order SimPy schedules them
CW_STATION, CW_AT, CW_END, CW_OUTAGE, CW_VALUE = range(5)   # CW_VALUE: the factor, or REFUSE / HANG

# the schedule table: one row per change of a station's workers, in the order SimPy schedules them
SC_STATION, SC_AT, SC_WORKERS = range(3)

# the batch table, per station: a batch station?, its size (0: none), every (inf: no timer), first-item timer?
BT_ON, BT_SIZE, BT_EVERY, BT_FIRST_ITEM = range(4)

# a batch record (paysim.engine.compiled.batch): its station, items left and joined, its item list,
# the next closed batch of its station, and the record's reuses
BR_STATION, BR_LIVE, BR_JOINED, BR_HEAD, BR_TAIL, BR_AFTER, BR_GEN, BR_WIDTH = range(8)

# a station's float accumulators (time integrals and sums, as paysim.observe.StationObserver)
(STF_AREA_IN, STF_AREA_BUSY, STF_WAIT, STF_SOJOURN, STF_SERVICE,
 STF_TIME_ALL, STF_WAIT_ALL, STF_SERVICE_ALL, STF_AREA_BUSY_WORKERS, STF_LAST, STF_WIDTH) = range(11)
STF_SUMS = STF_LAST    # columns zeroed when the window opens: those before STF_LAST
STF_DRAIN = STF_WIDTH  # a backlog station's drain: -1 until its queue first empties, then when (backlog.py)
STF_WIDTH += 1

# a station's integer state and counts
# (ST_WORKERS: the workers it has now, which a schedule changes. ST_BUSY counts transactions in
# service, at a batch station its items, while ST_BUSY_WORKERS counts the workers processing
# batches; ST_GATHERING is the batch gathering there, ST_*_CLOSED the closed ones waiting, -1 none)
(ST_IN, ST_BUSY, ST_ENTERED, ST_REJECTED, ST_STARTED, ST_FINISHED, ST_ERRORED, ST_ABANDONED,
 ST_CANCELLED, ST_DEPARTED, ST_BATCHES, ST_WAITING, ST_HEAD, ST_TAIL, ST_WORKERS, ST_BUSY_WORKERS,
 ST_GATHERING, ST_FIRST_CLOSED, ST_LAST_CLOSED, ST_WIDTH) = range(20)
ST_COUNTS = (ST_ENTERED, ST_BATCHES + 1)   # the counts zeroed when the window opens
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
 TXI_BATCH,      # its batch record at a batch station; once the batch is done, TO_ERROR if it erred
 TXI_ON_CALLER,  # 1: it runs on its caller's thread (an executor's caller_runs)
 TXI_WIDTH) = range(11)

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

# the breaker table (paysim.engine.compiled.breaker): one row per call step with a breaker; its
# configuration, then its state, then its tallies when the window opened (BK_AT_*);
# BK_RING: the first row of its slots in the ring table
(BK_THRESHOLD, BK_SIZE, BK_TIME_BASED, BK_MIN_CALLS, BK_PROBE_MIN, BK_OPEN_FOR, BK_HALF_OPEN, BK_RING,
 BK_STATE, BK_HEAD, BK_SECOND, BK_CALLS, BK_FAILED, BK_OPENED_AT, BK_UNTIL, BK_OPEN_TIME,
 BK_PERMITS, BK_PROBES, BK_PROBES_FAILED, BK_REJECTED, BK_OPENED,
 BK_AT_OPEN_TIME, BK_AT_REJECTED, BK_AT_OPENED, BK_WIDTH) = range(25)
BS_CLOSED, BS_OPEN, BS_HALF_OPEN = range(3)    # BK_STATE: a breaker's state
RING_CALLS, RING_FAILED, RING_WIDTH = range(3)      # a ring slot: a call, or a second's calls
TO_BREAKER_OPEN = -6   # where a call its breaker refused goes: back to its caller, failed
TXI_BREAKER = TXI_WIDTH   # of a call: 1 + its breaker while it let it through and it has not ended
TXI_WIDTH += 1

# held calls (paysim.engine.compiled.calls): a caller's state while its worker waits on its
# calls, two event kinds (a step's timer, a step's retry after its backoff), where a step
# that timed out sends its caller, and per slot where it is in its station's calls
HELD = 6
STEP_TIMEOUT, STEP_RETRY = 13, 14   # (event kinds: numbered after those above)
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
# autoscalers (paysim.engine.compiled.autoscale): a tick observes and decides, a provisioning
# order starts serving (ident: the station row)
AUTOSCALE_TICK, AUTOSCALE_READY = 20, 21
# the autoscale table, one row per station row (AS_ON 0: none; AS_METRIC: autoscale.METRICS)
AS_ON, AS_METRIC, AS_TARGET, AS_MIN, AS_MAX, AS_EVERY, AS_DELAY, AS_COOLDOWN, AS_TOLERANCE, AS_WIDTH = range(10)
# an autoscaler's float state: the station's integrals at the last tick (AF_LAST + column of
# autoscale.N_LIFETIME) and what the window's start zeroed of them (AF_BEFORE + column); the
# workers' integral since time 0 up to their last change (AF_CHANGED), and at the window's start
AF_LAST, AF_BEFORE, AF_AREA_WORKERS, AF_CHANGED, AF_AT_WINDOW, AF_WIDTH = 0, 5, 10, 11, 12, 13
# its integer state: the workers asked for; the rings of recommendations and of orders (head, count)
AI_ASKED, AI_HISTORY_HEAD, AI_HISTORY, AI_ORDERS_HEAD, AI_ORDERS, AI_WIDTH = range(6)
