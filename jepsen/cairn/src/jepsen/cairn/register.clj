(ns jepsen.cairn.register
  "Linearizable single-key registers, checked by Knossos (the wgl search)
  against a versioned register, over many independent keys.

  Operations, on key jepsen/register/K (values as Jepsen's independent
  tuples [K V]):

    :read   GET /v1/kv/KEY (linearizable)                   ok [version value]
    :write  PUT /v1/kv/KEY                                  ok [version value]
    :cas    POST /v1/txn: compare value == OLD, put NEW     ok [version [OLD NEW]]
            (the local harness's cas: PUT ?cas= compares a mod_revision,
            which is not a register's compare-and-set; the append workload
            exercises that one)

  Versions are Cairn's per-key version (writes since the key was created,
  docs/http.md, KV): a read reports the key's, a write or cas reports the
  one it created (its previous version, from prev_kv, plus one). A register
  starts absent: version 0, value nil. Knowing the version of every
  completed operation lets the model place it exactly, so a search that
  could take minutes takes milliseconds, and more anomalies show (a
  version that goes back, two writes at one version)."
  (:require [jepsen [checker :as checker]
                    [client :as client]
                    [generator :as gen]
                    [independent :as independent]]
            [jepsen.checker.timeline :as timeline]
            [jepsen.cairn [client :as cc]
                          [support :as s]]
            [knossos.model :as model])
  (:import (knossos.model Model)))

(defrecord VersionedRegister [version value]
  Model
  (step [this op]
    (let [[v x] (:value op)]
      (case (:f op)
        :read  (cond (and v (not= v version))
                     (model/inconsistent (str "read version " v " of a register at version " version))
                     (and v (not= x value))
                     (model/inconsistent (str "read " (pr-str x) " of a register holding " (pr-str value)))
                     :else this)
        :write (if (and v (not= v (inc version)))
                 (model/inconsistent (str "write made version " v " of a register at version " version))
                 (VersionedRegister. (inc version) x))
        :cas   (let [[old new] x]
                 (cond (not= old value)
                       (model/inconsistent (str "cas from " (pr-str old) " on a register holding "
                                                (pr-str value)))
                       (and v (not= v (inc version)))
                       (model/inconsistent (str "cas made version " v " of a register at version "
                                                version))
                       :else (VersionedRegister. (inc version) new))))))

  Object
  (toString [_] (str "v" version "=" (pr-str value))))

(defn versioned-register
  "An absent register: version 0, no value."
  []
  (VersionedRegister. 0 nil))

(defn register-key [k] (str s/key-prefix "register/" k))

(defn- parse-value [x] (when x (parse-long x)))

(defrecord Client [conn]
  client/Client
  (open! [this test node] (assoc this :conn (cc/open node)))
  (setup! [_ _])
  (teardown! [_ _])
  (close! [_ _] (cc/close conn))

  (invoke! [_ test op]
    (let [[k [_ x]] (:value op)
          kk        (register-key k)]
      (case (:f op)
        :read
        (cc/with-errors op :read
          (let [[kv _] (cc/get-kv conn kk)]
            (assoc op :type :ok
                   :value (independent/tuple k [(or (:version kv) 0) (parse-value (:value kv))]))))

        :write
        (cc/with-errors op :write
          (let [r (cc/put! conn kk x)]
            (assoc op :type :ok
                   :value (independent/tuple k [(inc (or (:version (:prev_kv r)) 0)) x]))))

        :cas
        (cc/with-errors op :write
          (let [[old new] x
                r (cc/txn! conn
                           [{:key kk, :target "value", :op "==", :value (str old)}]
                           [{:op "put", :key kk, :value (str new), :prev_kv true}])]
            (if (:succeeded r)
              (let [prev (-> r :results first :kvs first)]
                (assoc op :type :ok
                       :value (independent/tuple k [(inc (or (:version prev) 0)) [old new]])))
              (assoc op :type :fail, :error :compare-failed))))))))

(defn r   [_ _] {:type :invoke, :f :read,  :value [nil nil]})
(defn w   [_ _] {:type :invoke, :f :write, :value [nil (rand-int 5)]})
(defn cas [_ _] {:type :invoke, :f :cas,   :value [nil [(rand-int 5) (rand-int 5)]]})

(defn workload
  "Each key gets --ops-per-key operations from a group of twice as many
  threads as nodes, then a fresh key takes its place (as etcd's test does,
  200 keeps the search per key small)."
  [opts]
  (let [n (count (:nodes opts))]
    {:client    (Client. nil)
     :checker   (independent/checker
                  (checker/compose
                    {:linear   (checker/linearizable {:model     (versioned-register)
                                                      :algorithm :wgl})
                     :timeline (timeline/html)}))
     :generator (independent/concurrent-generator
                  (* 2 n)
                  (range)
                  (fn [_k]
                    (->> (gen/mix [r r w cas])
                         (gen/limit (:ops-per-key opts 200)))))}))
