(ns jepsen.cairn.nemesis
  "The faults, as jepsen.nemesis.combined packages (a nemesis, a generator of
  its operations, a final generator that undoes them, and plot colours):

    :partition  partitions, one kind at a time, chosen at random among
                --partition-targets: :one (a node alone), :primaries (the
                leader alone), :majority (a minority against a majority),
                :majorities-ring (every node sees a majority, no two the
                same), :leader-deaf and :leader-mute (one-way: the leader
                hears nobody, or nobody hears it; built here, since
                jepsen.nemesis.combined cuts links both ways)
    :kill       kill -9 and restart (jepsen.nemesis.combined's db package)
    :pause      SIGSTOP and SIGCONT (the same)
    :clock      clock bumps, strobes and resets (jepsen.nemesis.time, via
                jepsen.nemesis.combined)
    :rolling    every node restarted in turn with SIGTERM, the leader last
    :member     members removed, wiped and added again
                (jepsen.cairn.membership)

  Packages run side by side (gen/any), so \"--nemesis partition,kill\" puts a
  partition and a kill on the cluster at once, as the local harness's mixed
  fault does."
  (:require [clojure.tools.logging :refer [info warn]]
            [jepsen [checker :as checker]
                    [generator :as gen]
                    [nemesis :as n]]
            [jepsen.nemesis.combined :as nc]
            [jepsen.cairn [db :as cdb]
                          [membership :as membership]]))

(def partition-targets
  "Every partition kind the partition package knows."
  [:one :primaries :majority :majorities-ring :leader-deaf :leader-mute])

(defn one-way-grudge
  "A grudge (node -> nodes it drops packets from) that cuts the leader off
  one way: :leader-deaf, it hears nobody (everybody hears it);
  :leader-mute, nobody hears it (it hears everybody). Falls back to a random
  node when no node leads."
  [test kind]
  (let [nodes  (:nodes test)
        victim (or (cdb/leader test) (rand-nth (vec nodes)))
        others (set (remove #{victim} nodes))]
    (case kind
      :leader-deaf {victim others}
      :leader-mute (into {} (map (fn [o] [o #{victim}]) others)))))

(defn partition-nemesis
  "Takes :start-partition with a kind from partition-targets and
  :stop-partition. Records the grudge it applied in the completion."
  ([] (partition-nemesis (n/partitioner)))
  ([p]
   (reify
     n/Reflection
     (fs [_] #{:start-partition :stop-partition})

     n/Nemesis
     (setup! [_ test] (partition-nemesis (n/setup! p test)))

     (invoke! [_ test op]
       (case (:f op)
         :start-partition
         (let [kind   (:value op)
               grudge (if (#{:leader-deaf :leader-mute} kind)
                        (one-way-grudge test kind)
                        (nc/grudge test (:db test) kind))
               r      (n/invoke! p test (assoc op :f :start, :value grudge))]
           (assoc op :value [kind (:value r)]))

         :stop-partition
         (assoc op :value (:value (n/invoke! p test (assoc op :f :stop))))))

     (teardown! [_ test] (n/teardown! p test)))))

(defn partition-package
  [opts]
  (let [targets (:partition-targets opts partition-targets)
        start   (fn [_ _] {:type :info, :f :start-partition, :value (rand-nth targets)})
        stop    {:type :info, :f :stop-partition, :value nil}]
    {:nemesis         (partition-nemesis)
     :generator       (->> (gen/flip-flop start (gen/repeat stop))
                           (gen/stagger (:interval opts)))
     :final-generator stop
     :perf            #{{:name  "partition"
                         :start #{:start-partition}
                         :stop  #{:stop-partition}
                         :color "#E9DCA0"}}}))

(defn rolling-nemesis
  []
  (reify
    n/Reflection
    (fs [_] #{:rolling-restart})

    n/Nemesis
    (setup! [this _] this)
    (invoke! [_ test op]
      (assoc op :value (cdb/rolling-restart! test)))
    (teardown! [_ _])))

(defn rolling-package
  [opts]
  {:nemesis   (rolling-nemesis)
   :generator (->> (gen/repeat {:type :info, :f :rolling-restart})
                   ; A rolling restart takes a while; leave room around it.
                   (gen/stagger (* 3 (:interval opts))))
   :perf      #{{:name  "rolling"
                 :fs    #{:rolling-restart}
                 :color "#C5A0E9"}}})

(defn nemesis-package
  "The combined package for the faults in (:faults opts), a set of keywords
  (above). opts: :db, :interval (seconds), :faults, :partition-targets,
  :kill-targets, :pause-targets, :clock-targets (node specs, see
  jepsen.nemesis.combined/db-nodes)."
  [opts]
  (let [faults (set (:faults opts))
        opts   (assoc opts :faults faults)
        node-targets {:kill  {:targets (:kill-targets opts [:one :primaries :minority])}
                      :pause {:targets (:pause-targets opts [:one :primaries :minority])}
                      :clock {:targets (:clock-targets opts [:one :primaries :minority :all])}}
        opts   (merge opts node-targets)]
    (->> [(when (faults :partition) (partition-package opts))
          (when (some faults [:kill :pause]) (nc/db-package opts))
          (when (faults :clock) (nc/clock-package opts))
          (when (faults :rolling) (rolling-package opts))
          (when (faults :member) (membership/package opts))
          ; Last: its final operation must follow every other heal.
          (convergence-package)]
         (remove nil?)
         nc/compose-packages)))

;; Convergence (CHAOS.md: "at the end all replicas hold the same state"):
;; after the final heal, the nemesis polls every node's status until all
;; report the same revision and state hash, for at most 30 s, and records
;; what it saw; convergence-checker judges that record.

(defn- converged
  [statuses]
  (let [answers (vals statuses)]
    (and (every? some? answers)
         (apply = (map (juxt :revision :state_hash) answers)))))

(defn convergence-nemesis
  []
  (reify
    n/Reflection
    (fs [_] #{:check-convergence})

    n/Nemesis
    (setup! [this _] this)
    (invoke! [_ test op]
      (let [deadline (+ (System/currentTimeMillis) 30000)]
        (loop []
          (let [st  (cdb/statuses test)
                ok? (converged st)]
            (if (or ok? (< deadline (System/currentTimeMillis)))
              (assoc op :value {:converged? ok?
                                :nodes (into (sorted-map)
                                             (map (fn [[node s]]
                                                    [node (when s (select-keys s [:id :state :term :revision
                                                                                  :applied_index :state_hash]))])
                                                  st))})
              (do (Thread/sleep 500) (recur)))))))
    (teardown! [_ _])))

(defn convergence-package
  []
  {:nemesis         (convergence-nemesis)
   :final-generator {:type :info, :f :check-convergence, :value nil}
   :perf            #{}})

(defn convergence-checker
  "Valid when the final :check-convergence found every node at the same
  revision and state hash."
  []
  (reify checker/Checker
    (check [_ _ history _]
      (let [op (->> history
                    (filter #(and (= :check-convergence (:f %)) (= :info (:type %))
                                  (map? (:value %))))
                    last)]
        (cond (nil? op) {:valid? :unknown, :error "no convergence check ran"}
              :else     (assoc (:value op) :valid? (boolean (:converged? (:value op)))))))))
