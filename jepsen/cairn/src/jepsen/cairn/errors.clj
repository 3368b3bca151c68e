(ns jepsen.cairn.errors
  "What a failed request to Cairn's HTTP API means for the history: :fail
  when the operation certainly did not happen, :info when it may have
  happened at any point after its invoke, or never (CHAOS.md, \"History\").

  This namespace is pure (no Jepsen, no I/O), so that the test command runs
  its unit test with Debian's clojure package (test/jepsen/cairn/errors_test.clj).

  An error is a map made by jepsen.cairn.client:

    {:status 503, :code \"no_leader\", :message \"...\"}   an HTTP error answer
    {:status nil, :code :connect, ...}                    the request never left
                                                          (connection refused,
                                                          connect timeout)
    {:status nil, :code :timeout, ...}                    no answer in time after
                                                          the request was sent
    {:status nil, :code :io, ...}                         the connection broke
    {:status 200, :code :malformed, ...}                  an answer we cannot read

  The rules, row by row the table in jepsen/cairn/README.md (\"Errors\"); the
  codes are docs/http.md's, produced by src/http_status.c from libcairn's:

  | answer                                     | read  | write |
  |--------------------------------------------|-------|-------|
  | the request never left (:connect)          | :fail | :fail |
  | 400 bad_request, future_revision           | :fail | :fail |
  | 404 not_found, 405, 410 compacted          | :fail | :fail |
  | 409 compare_failed (cas on mod_revision)   | :fail | :fail |
  | 409 conflict (a member change under way)   | :fail | :fail |
  | 413 too_large                              | :fail | :fail |
  | 429 overloaded (raft refused the proposal) | :fail | :fail |
  | 503 no_leader (CAIRN_ENOLEADER/ENOTLEADER: | :fail | :fail |
  |   refused before anything was proposed)    |       |       |
  | 503 unavailable (CAIRN_ETIMEOUT,           | :fail | :fail |
  |   EUNAVAILABLE or ESHUTDOWN: for a write,  |       |       |
  |   never sent or refused unapplied; a write |       |       |
  |   sent whose answer was lost is 500        |       |       |
  |   outcome_unknown, docs/http.md)           |       |       |
  | 503 stale, watch_streams_exhausted,        | :fail | :info |
  |   not_ready, any other 503                 |       |       |
  | 500 outcome_unknown (CAIRN_EUNKNOWN)       | :fail | :info |
  | 500 internal, any other status             | :fail | :info |
  | client timeout after sending (:timeout)    | :fail | :info |
  | connection broken (:io), unreadable answer | :fail | :info |

  A read changes nothing, so a read that did not answer is :fail whatever
  the reason: it took no effect and returned no value.")

(def definite-codes
  "HTTP error codes after which a write certainly did not happen: the node
  refused it before proposing anything (docs/http.md's error table; cairnd
  validates requests and checks leadership before it proposes)."
  #{"bad_request" "future_revision" "not_found" "method_not_allowed"
    "compare_failed" "conflict" "compacted" "too_large" "overloaded"
    "no_leader" "unavailable"})

(defn definite?
  "True when the failed request certainly took no effect on the store."
  [{:keys [status code]}]
  (cond (= :connect code)           true
        (keyword? code)             false
        (contains? definite-codes code) true
        ; An error answer below 500 that we do not know by code is still a
        ; refusal: cairnd never answers 4xx after proposing.
        (and (integer? status) (<= 400 status 499)) true
        :else                       false))

(defn outcome
  "The completion type of an operation that failed with error e. kind is
  :read for operations that change nothing, :write for any other."
  [kind e]
  (cond (= :read kind) :fail
        (definite? e)  :fail
        :else          :info))
