(ns jepsen.cairn.watch-log
  "The watch check: each watcher's log against the committed history of its
  keys, and stale reads against the same history. It is the Clojure form of
  the local harness's check (jepsen/local/checker/watch.c; the rules are in
  jepsen/README.md, \"watch: each watcher against the committed log\"), for
  the histories the Jepsen suite records. jepsen-io/etcd's watch check
  compares watchers with each other only; a watcher and a replica that
  agree on a wrong history pass that, and fail this.

  Pure Clojure (no Jepsen, no I/O): jepsen.cairn.watch turns the history into
  the data below, and the test command runs this namespace's unit test with
  Debian's clojure package.

  Input:

    committed  {:final F, :events [{:rev R, :key K, :value V} ...]}
               every version of every workload key, from the keys' histories
               after the run (V nil: a deletion); F the run's final revision
               (a linearizable read after every write ended), or nil
    watchers   [{:id \"...\", :start S, :prefix? bool, :range K-or-P,
                 :ended? bool, :target T,
                 :updates [{:kind :events, :rev R, :events [{:rev :key :value}]}
                           {:kind :snapshot, :rev R, :kvs [{:key :value}]}
                           {:kind :progress, :rev R} ...]} ...]
               one per watch stream, updates in the order received. S is the
               first revision it must deliver (0: unknown, the check starts at
               its first update). :ended? true when the client ended it
               (no final revision expected); a watcher not ended must vouch
               for T (or, without T, for F) by its last update
    reads      [{:reader \"n1\", :rev R, :key K, :value V, :mod M, :known N}]
               stale reads: the answer's revision R, the key's value (nil:
               absent) and mod_revision (0: absent), and N the newest
               acknowledged write's revision when the read was sent (nil:
               unknown)

  Anomalies, per watcher (as the C checker names them): :duplicate, :reorder,
  :split, :bad-update, :gap, :mismatch, :snapshot, :behind; and :stale-read."
  (:require [clojure.set :as set]
            [clojure.string :as str]))

(def reports-per-kind-max
  "At most this many anomalies of a kind are kept in the result (all are
  counted)."
  50)

(defn- in-range?
  [w k]
  (if (:prefix? w)
    (str/starts-with? k (:range w))
    (= k (:range w))))

;; Pass 1: order of delivery.

(defn- check-order
  [w]
  (loop [ups     (map-indexed vector (:updates w))
         seen    #{}
         last    0
         last-u  nil
         from-ev false
         out     []]
    (if-let [[u up] (first ups)]
      (if (not= :events (:kind up))
        (let [ok? (if (= :progress (:kind up))
                    (<= last (:rev up))
                    (< last (:rev up)))
              out (if (and (not ok?) (not (and (= :snapshot (:kind up)) (zero? last))))
                    (conj out {:kind :reorder, :rev (:rev up)
                               :detail (str (name (:kind up)) " revision " (:rev up)
                                            " after revision " last " was delivered")})
                    out)]
          (if (< last (:rev up))
            (recur (rest ups) seen (:rev up) u false out)
            (recur (rest ups) seen last last-u from-ev out)))
        (let [evs (:events up)
              out (if (empty? evs)
                    (conj out {:kind :bad-update, :rev (:rev up)
                               :detail "events update without events"})
                    out)
              [seen last last-u from-ev out]
              (reduce (fn [[seen last last-u from-ev out] ev]
                        (let [id  [(:rev ev) (:key ev)]
                              out (cond
                                    (seen id)
                                    (conj out {:kind :duplicate, :rev (:rev ev)
                                               :detail (str "key " (:key ev) " delivered again")})

                                    (or (< (:rev ev) last)
                                        (and (= (:rev ev) last) (not from-ev)))
                                    (conj out {:kind :reorder, :rev (:rev ev)
                                               :detail (str "key " (:key ev) " of revision " (:rev ev)
                                                            " delivered after revision " last)})

                                    (and (= (:rev ev) last) (not= last-u u))
                                    (conj out {:kind :split, :rev (:rev ev)
                                               :detail (str "key " (:key ev) " of revision " (:rev ev)
                                                            " came in a later update than the"
                                                            " revision's other events")})
                                    :else out)]
                          (if (<= last (:rev ev))
                            [(conj seen id) (:rev ev) u true out]
                            [(conj seen id) last last-u from-ev out])))
                      [seen last last-u from-ev out]
                      evs)
              top (when (seq evs) (apply max (map :rev evs)))
              out (if (and top (not= top (:rev up)))
                    (conj out {:kind :bad-update, :rev (:rev up)
                               :detail (str "update revision " (:rev up)
                                            " but its last event is at revision " top)})
                    out)]
          (recur (rest ups) seen last last-u from-ev out)))
      out)))

;; The committed history.

(defn- state-at
  "The committed state of the watcher's range at revision r: key -> value."
  [committed-by-key w r]
  (->> committed-by-key
       (keep (fn [[k evs]]
               (when (in-range? w k)
                 (let [last-ev (last (take-while #(<= (:rev %) r) evs))]
                   (when (and last-ev (some? (:value last-ev)))
                     [k (:value last-ev)])))))
       (into {})))

(defn- check-snapshot
  [committed-by-key w up]
  (let [want (state-at committed-by-key w (:rev up))
        kvs  (:kvs up)
        dups (->> kvs (map :key) frequencies (filter #(< 1 (val %))) (map key))
        got  (into {} (map (juxt :key :value) kvs))
        r    (:rev up)]
    (concat
      (for [k dups]
        {:kind :snapshot, :rev r, :detail (str "key " k " listed twice")})
      (for [k (keys got) :when (not (in-range? w k))]
        {:kind :snapshot, :rev r, :detail (str "key " k " is outside the range")})
      (for [k (sort (set/union (set (keys want)) (set (filter #(in-range? w %) (keys got)))))
            :when (not= (get want k) (get got k))]
        {:kind :snapshot, :rev r
         :detail (str "key " k ": snapshot has " (pr-str (get got k))
                      ", committed state has " (pr-str (get want k)))}))))

;; Passes 2 and 3: coverage and content.

(defn- intervals
  "The revisions the watcher vouched for, as [lo hi] pairs in order, and the
  snapshot anomalies met on the way."
  [committed-by-key w]
  (loop [ups (:updates w), c (:start w 0), ivs [], out []]
    (if-let [up (first ups)]
      (cond
        (= :snapshot (:kind up))
        (recur (rest ups) (max c (inc (:rev up))) ivs
               (into out (check-snapshot committed-by-key w up)))

        (and (zero? c) (= :progress (:kind up)))
        (recur (rest ups) (inc (:rev up)) ivs out)

        :else
        (let [c (if (zero? c)
                  (apply min (or (seq (map :rev (:events up))) [(:rev up)]))
                  c)]
          (if (<= c (:rev up))
            (recur (rest ups) (inc (:rev up)) (conj ivs [c (:rev up)]) out)
            (recur (rest ups) c ivs out))))
      [ivs out])))

(defn- vouched?
  "Is r within one of the intervals (a sorted map lo -> hi)?"
  [ivs r]
  (when-let [[_ hi] (first (rsubseq ivs <= r))]
    (<= r hi)))

(defn- check-content
  [committed-by-rev committed-by-key w]
  (let [[ivs out] (intervals committed-by-key w)
        ivs       (into (sorted-map) ivs)
        ; Delivered events, each (revision, key) once: revision -> key -> value.
        delivered (reduce (fn [m ev]
                            (if (contains? (get m (:rev ev)) (:key ev))
                              m
                              (assoc-in m [(:rev ev) (:key ev)] (:value ev))))
                          (sorted-map)
                          (mapcat :events (:updates w)))
        ; Committed events in range: revision -> key -> value.
        wanted    (->> committed-by-rev
                       (keep (fn [[r evs]]
                               (let [in (filter #(in-range? w (:key %)) evs)]
                                 (when (seq in)
                                   [r (into {} (map (juxt :key :value) in))]))))
                       (into (sorted-map)))
        revs      (sort (set/union (set (keys delivered)) (set (keys wanted))))
        start     (:start w 0)]
    (into out
          (mapcat
            (fn [r]
              (let [got  (get delivered r)
                    want (get wanted r)]
                (cond
                  (not (vouched? ivs r))
                  (when (and got (< r start))
                    [{:kind :mismatch, :rev r
                      :detail (str "revision " r " delivered but the watch starts at " start)}])

                  (nil? got)
                  [{:kind :gap, :rev r
                    :detail (str "committed revision " r " (" (count want)
                                 " events in range, e.g. key " (first (sort (keys want)))
                                 ") never delivered")}]

                  (nil? want)
                  [{:kind :mismatch, :rev r
                    :detail (str "revision " r " delivered but nothing in range was committed at it")}]

                  :else
                  (for [k (sort (set/union (set (keys got)) (set (keys want))))
                        :let [g (find got k), c (find want k)]
                        :when (not= g c)]
                    {:kind :mismatch, :rev r
                     :detail (cond (nil? c) (str "key " k " was not changed at revision " r)
                                   (nil? g) (str "committed event of key " k " at revision " r
                                                 " missing from the update")
                                   :else    (str "key " k ": delivered " (pr-str (val g))
                                                 ", committed " (pr-str (val c))))}))))
            revs))))

(defn- check-behind
  [committed w]
  (let [target (or (:target w) (:final committed))
        top    (reduce max 0 (map :rev (:updates w)))]
    (when (and (not (:ended? w)) target (< top target))
      [{:kind :behind, :rev top
        :detail (str "vouched only up to revision " top ", not the final revision " target)}])))

(defn check-watcher
  "Every anomaly of one watcher, each a map {:kind, :rev, :detail}."
  [committed-by-rev committed-by-key committed w]
  (->> (concat (check-order w)
               (check-content committed-by-rev committed-by-key w)
               (check-behind committed w))
       (map #(assoc % :watcher (:id w)))))

;; Stale reads.

(defn- check-read
  [committed-by-key final rd]
  (let [evs  (get committed-by-key (:key rd))
        e    (last (take-while #(<= (:rev %) (:rev rd)) evs))
        [v m] (if (and e (some? (:value e))) [(:value e) (:rev e)] [nil 0])]
    (cond
      (and final (< final (:rev rd)))
      {:kind :stale-read, :rev (:rev rd), :reader (:reader rd)
       :detail (str "read of " (:key rd) " answered at revision " (:rev rd)
                    ", after the final revision " final)}

      (or (not= v (:value rd)) (not= m (:mod rd)))
      {:kind :stale-read, :rev (:rev rd), :reader (:reader rd)
       :detail (str "read of " (:key rd) " at revision " (:rev rd) " gave "
                    (pr-str (:value rd)) " (mod_revision " (:mod rd) "), committed state "
                    (pr-str v) " (mod_revision " m ")")})))

(defn staleness
  "How stale each reader's reads were (reported, not judged: staleness is
  what a stale read allows)."
  [reads]
  (->> reads
       (group-by :reader)
       (map (fn [[reader rs]]
              (let [lags (keep (fn [r] (when (and (:known r) (< (:rev r) (:known r)))
                                         (- (:known r) (:rev r))))
                               rs)
                    back (->> rs (map :rev) (partition 2 1) (filter (fn [[a b]] (< b a))) count)]
                [reader {:reads        (count rs)
                         :behind       (count lags)
                         :lag-max      (reduce max 0 lags)
                         :lag-mean     (if (seq lags) (double (/ (reduce + lags) (count lags))) 0.0)
                         :went-back    back}])))
       (into (sorted-map))))

(defn check
  "Checks watchers and stale reads against the committed history. Returns
  {:valid? bool, :anomaly-types [...], :anomaly-counts {kind n},
   :anomalies {kind [first few]}, and figures}."
  [committed watchers reads]
  (let [evs              (sort-by (juxt :rev :key) (:events committed))
        committed-by-rev (into (sorted-map) (group-by :rev evs))
        committed-by-key (group-by :key evs)
        final            (or (:final committed) (:rev (last evs)))
        anomalies        (concat (mapcat (partial check-watcher committed-by-rev
                                                  committed-by-key committed)
                                         watchers)
                                 (keep (partial check-read committed-by-key final) reads))
        by-kind          (group-by :kind anomalies)]
    {:valid?           (empty? by-kind)
     :anomaly-types    (vec (sort (keys by-kind)))
     :anomaly-counts   (into (sorted-map) (map (fn [[k v]] [k (count v)]) by-kind))
     :anomalies        (into (sorted-map)
                             (map (fn [[k v]] [k (vec (take reports-per-kind-max v))]) by-kind))
     :watchers         (count watchers)
     :updates          (reduce + (map (comp count :updates) watchers))
     :events           (reduce + (map (fn [w] (reduce + (map (comp count :events) (:updates w))))
                                      watchers))
     :committed-events (count evs)
     :final-revision   final
     :reads            (count reads)
     :staleness        (staleness reads)}))
