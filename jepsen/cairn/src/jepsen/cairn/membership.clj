(ns jepsen.cairn.membership
  "The membership nemesis: members removed from the cluster, wiped, and
  added again, under load, the way an operator replaces a node
  (docs/operations.md, \"Membership\"), and as the local harness's member
  fault does, but spread over two operations so that the cluster runs a
  while with fewer voters.

  Each node moves through these states; the nemesis keeps them in
  jepsen.cairn.db's state atom and checks them against the configuration
  the leader reports before every move:

        :voter ---- :remove-member ----> :removed ---- :add-member ----> :voter
          ^      (DELETE /v1/members/ID;  (down, data      (start with --join 1,
          |       it stops by itself;     wiped)           POST /v1/members,
          |       wiped)                                   promote when caught up)
          +------------------ :standby <----------------------+
                      (added but not promoted yet: the next
                       :add-member promotes it)

  The invariant: a removal happens only while more than a majority of the
  test's nodes are voters, so the cluster always keeps a majority of its
  original size as voters (3 of 5, 2 of 3), and at most one change runs at a
  time (the nemesis is one process). A membership answer that is lost
  (timeout, leader change) leaves the nemesis unsure; it never guesses: the
  next operation reconciles with the configuration first (a node that the
  configuration no longer lists is treated as removed: killed if it still
  runs, wiped)."
  (:require [clojure.tools.logging :refer [info warn]]
            [jepsen [control :as c]
                    [generator :as gen]
                    [nemesis :as n]
                    [util :as util]]
            [jepsen.cairn [client :as client]
                          [db :as cdb]
                          [support :as s]]))

(defn min-voters
  "The fewest voters the nemesis leaves: a majority of the test's nodes."
  [test]
  (util/majority (count (:nodes test))))

(defn reconcile!
  "Brings the db's state in line with the configuration the leader reports,
  and returns that configuration (node -> role), or nil when nobody
  answered."
  [test]
  (when-let [config (cdb/members test)]
    (let [state   (:state (:db test))
          missing (->> (:nodes test)
                       (remove (set (keys config)))
                       (remove (:removed @state)))]
      (doseq [node missing]
        (warn node "is not in the configuration" config "; treating it as removed")
        (swap! state update :removed conj node)
        (c/on-nodes test [node] (fn [_ _] (cdb/kill-cairnd!) (cdb/wipe!))))
      config)))

(defn remove-one!
  [test]
  (if-let [config (reconcile! test)]
    (let [voters (->> config (filter (comp #{"voter"} val)) (map key))]
      (if (<= (count voters) (min-voters test))
        {:skipped (str (count voters) " voters: removing one would leave fewer than a majority of "
                       (count (:nodes test)))}
        (cdb/remove-member! test (rand-nth (vec voters)))))
    {:skipped "no node reported the configuration"}))

(defn add-one!
  "Adds back a removed node, or promotes a standby. which: a node, or nil
  for any."
  [test which]
  (if-let [config (reconcile! test)]
    (let [removed  (:removed @(:state (:db test)))
          standbys (->> config (filter (comp #{"standby"} val)) (map key))
          pick     (fn [xs] (if which (some #{which} xs) (first (shuffle xs))))]
      (cond (pick standbys)
            (let [node (pick standbys)]
              (try (client/set-member-role! (client/open (rand-nth (vec (remove #{node} (:nodes test)))))
                                            (s/node-id test node) "voter")
                   {:node node, :promoted? true}
                   (catch clojure.lang.ExceptionInfo e
                     (if (client/error? e)
                       {:node node, :promoted? false, :error (select-keys (ex-data e) [:status :code :message])}
                       (throw e)))))

            (pick removed)
            (cdb/add-member! test (pick removed))

            :else {:skipped "every node is a voter"}))
    {:skipped "no node reported the configuration"}))

(defn nemesis
  []
  (reify
    n/Reflection
    (fs [_] #{:remove-member :add-member})

    n/Nemesis
    (setup! [this _] this)

    (invoke! [_ test op]
      (assoc op :value
             (case (:f op)
               :remove-member (remove-one! test)
               :add-member    (if (= :all (:value op))
                                ; The final generator: everyone back.
                                (loop [results []]
                                  (let [r (add-one! test nil)]
                                    (if (or (:skipped r) (< 10 (count results)))
                                      (conj results r)
                                      (recur (conj results r)))))
                                (add-one! test nil)))))

    (teardown! [_ _])))

(defn package
  "The membership package for jepsen.cairn.nemesis: removals and additions
  in turn, every --nemesis-interval seconds or so; at the end, every node
  back."
  [opts]
  {:nemesis         (nemesis)
   :generator       (->> (gen/flip-flop (gen/repeat {:type :info, :f :remove-member})
                                        (gen/repeat {:type :info, :f :add-member}))
                         (gen/stagger (:interval opts)))
   :final-generator {:type :info, :f :add-member, :value :all}
   :perf            #{{:name  "member"
                       :start #{:remove-member}
                       :stop  #{:add-member}
                       :color "#E9A0E6"}}})
