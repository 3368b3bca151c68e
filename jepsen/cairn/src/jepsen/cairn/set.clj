(ns jepsen.cairn.set
  "Every acknowledged add must be in every read that starts after it, and
  in the final read (jepsen.checker/set-full, linearizable).

  As in the local harness, each element is a key of its own,
  jepsen/set/N with value N (PUT), so that an add is one plain write and a
  lost one is a lost write. A read lists the whole prefix at one revision:
  the first page is a linearizable read and the next ones read at its
  revision (jepsen.cairn.client/range-all)."
  (:require [clojure.string :as str]
            [jepsen [checker :as checker]
                    [client :as client]
                    [generator :as gen]]
            [jepsen.cairn [client :as cc]
                          [support :as s]]))

(def prefix (str s/key-prefix "set/"))

(defrecord Client [conn]
  client/Client
  (open! [this test node] (assoc this :conn (cc/open node {:timeout-ms 10000})))
  (setup! [_ _])
  (teardown! [_ _])
  (close! [_ _] (cc/close conn))

  (invoke! [_ test op]
    (case (:f op)
      :add  (cc/with-errors op :write
              (cc/put! conn (str prefix (:value op)) (:value op))
              (assoc op :type :ok))
      :read (cc/with-errors op :read
              (let [[kvs _] (cc/range-all conn prefix)]
                (assoc op :type :ok
                       :value (into (sorted-set)
                                    (map (fn [kv] (parse-long (subs (:key kv) (count prefix)))))
                                    kvs)))))))

(defn adds
  []
  (map (fn [x] {:type :invoke, :f :add, :value x}) (range)))

(defn read-op [_ _] {:type :invoke, :f :read, :value nil})

(defn workload
  "One thread reads now and then; the others add."
  [_opts]
  {:client          (Client. nil)
   :checker         (checker/set-full {:linearizable? true})
   :generator       (gen/reserve 1 (gen/stagger 2 (gen/repeat read-op)) (adds))
   :final-generator (gen/once read-op)})
