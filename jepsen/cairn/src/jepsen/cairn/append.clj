(ns jepsen.cairn.append
  "Elle's list-append over Cairn's transactions: strict serializability of
  multi-key transactions, checked by Elle (jepsen.tests.cycle.append).

  Each list is a key, jepsen/append/K, whose value is the list's elements
  separated by spaces (\"1 4 9\"). Cairn has no append, so a transaction with
  appends runs in two steps:

    1. a read-only transaction (POST /v1/txn with gets: linearizable, as a
       read) of the keys it appends to, giving each one's value and
       mod_revision (0: absent);
    2. one transaction whose compares require each of those keys' mod_revision
       to be unchanged (mod_revision == M; an absent key has 0), and whose
       success branch runs the micro-operations in order: a get for a read,
       a put of the list with the element appended for an append (a get
       sees an earlier put of the same transaction, docs/http.md).

  All of step 2 happens at one revision, so the reads and the appends of the
  Jepsen transaction take effect together, or not at all: when a compare
  fails (another transaction wrote a key in between), nothing was written and
  the client starts over, up to 5 times, then completes :fail. A transaction
  of reads only is one read-only transaction."
  (:require [clojure.string :as str]
            [jepsen [client :as client]]
            [jepsen.tests.cycle.append :as append]
            [jepsen.cairn [client :as cc]
                          [support :as s]]))

(defn list-key [k] (str s/key-prefix "append/" k))

(defn decode
  "A list from a stored value; nil for an absent key."
  [v]
  (when v
    (if (str/blank? v) [] (mapv parse-long (str/split v #" ")))))

(defn encode [xs] (str/join " " xs))

(def attempts-max 5)

(defn- read-keys!
  "Step 1: the current value and mod_revision of each key, as a map
  k -> {:list L, :mod M}."
  [conn ks]
  (let [ks (vec ks)
        r  (cc/txn! conn [] (map (fn [k] {:op "get", :key (list-key k)}) ks))]
    (into {} (map (fn [k res]
                    (let [kv (-> res :kvs first)]
                      [k {:list (decode (:value kv)), :mod (or (:mod_revision kv) 0)}]))
                  ks (:results r)))))

(defn- run-txn!
  "Step 2. Returns the completed micro-operations, or nil when a compare
  failed."
  [conn txn state]
  (let [ops (first
              (reduce (fn [[ops lists] [f k v]]
                        (case f
                          :r      [(conj ops {:op "get", :key (list-key k)}) lists]
                          :append (let [l (conj (vec (get lists k)) v)]
                                    [(conj ops {:op "put", :key (list-key k), :value (encode l)})
                                     (assoc lists k l)])))
                      [[] (into {} (map (fn [[k {:keys [list]}]] [k list]) state))]
                      txn))
        cmp (map (fn [[k {:keys [mod]}]]
                   {:key (list-key k), :target "mod_revision", :op "==", :number mod})
                 state)
        r   (cc/txn! conn cmp ops)]
    (when (:succeeded r)
      (mapv (fn [[f k v :as mop] res]
              (case f
                :r      [f k (decode (-> res :kvs first :value))]
                :append mop))
            txn (:results r)))))

(defrecord Client [conn]
  client/Client
  (open! [this test node] (assoc this :conn (cc/open node)))
  (setup! [_ _])
  (teardown! [_ _])
  (close! [_ _] (cc/close conn))

  (invoke! [_ test op]
    (let [txn     (:value op)
          written (->> txn (filter (comp #{:append} first)) (map second) distinct)]
      (if (empty? written)
        (cc/with-errors op :read
          (let [r (cc/txn! conn [] (map (fn [[_ k _]] {:op "get", :key (list-key k)}) txn))]
            (assoc op :type :ok
                   :value (mapv (fn [[f k _] res] [f k (decode (-> res :kvs first :value))])
                                txn (:results r)))))
        (loop [attempt 1]
          (let [state (try (read-keys! conn written)
                           (catch clojure.lang.ExceptionInfo e
                             (if (cc/error? e) e (throw e))))]
            (if (instance? Throwable state)
              ; Step 1 wrote nothing.
              (cc/with-errors op :read (throw state))
              (let [done (cc/with-errors op :write
                           (if-let [txn' (run-txn! conn txn state)]
                             (assoc op :type :ok, :value txn')
                             :compare-failed))]
                (cond (not= :compare-failed done) done
                      (< attempt attempts-max)     (recur (inc attempt))
                      :else (assoc op :type :fail, :error :compare-failed))))))))))

(defn workload
  [opts]
  (assoc (append/test {:key-count          10
                       :min-txn-length     1
                       :max-txn-length     4
                       :max-writes-per-key 128
                       :consistency-models [:strict-serializable]})
         :client (Client. nil)))
