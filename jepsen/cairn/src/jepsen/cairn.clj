(ns jepsen.cairn
  "The Jepsen test of Cairn: command line, test map, and the registries of
  workloads and faults. See jepsen/cairn/README.md for how to run it, and
  docs/jepsen.md for how it maps onto the local harness (jepsen/local)."
  (:gen-class)
  (:require [clojure.java.io :as io]
            [clojure.string :as str]
            [clojure.tools.logging :refer [info]]
            [jepsen [checker :as checker]
                    [cli :as cli]
                    [generator :as gen]
                    [tests :as tests]]
            [jepsen.os.debian :as debian]
            [jepsen.cairn [append :as append]
                          [db :as db]
                          [nemesis :as nemesis]
                          [register :as register]
                          [set :as cset]
                          [watch :as watch]]))

(def workloads
  "Workload names to functions of the options that build them: a map with
  :client, :generator, :checker and an optional :final-generator."
  {:register register/workload
   :set      cset/workload
   :append   append/workload
   :watch    watch/workload})

(def faults
  "The faults jepsen.cairn.nemesis knows."
  #{:partition :kill :pause :clock :member :rolling})

(def special-nemeses
  "Names for sets of faults. mixed is the local harness's mixed fault (a
  partition with a kill or a pause at the same time); all is every fault."
  {:none  []
   :mixed [:partition :kill :pause]
   :all   [:partition :kill :pause :clock :member :rolling]})

(defn parse-nemesis
  "\"partition,kill\" -> #{:partition :kill}; special names expand."
  [spec]
  (->> (str/split spec #",")
       (map (comp keyword str/trim))
       (mapcat (fn [f] (get special-nemeses f [f])))
       set))

(defn parse-partition-targets
  [spec]
  (mapv (comp keyword str/trim) (str/split spec #",")))

(def log-pattern
  "What in a node's log means a crash or an assertion failure (as the local
  harness scans for: jepsen/local/run.sh, check 6)."
  #"(?i)assert|abort|sanitizer|segmentation fault|core dumped|stack-buffer|heap-use")

(defn cairn-test
  "A test map from the command line's options."
  [opts]
  (let [workload-name (:workload opts)
        workload      ((workloads workload-name) opts)
        db            (db/db)
        pkg           (nemesis/nemesis-package
                        {:db                db
                         :faults            (:nemesis opts)
                         :interval          (:nemesis-interval opts)
                         :partition-targets (:partition-targets opts)})
        gen (->> (:generator workload)
                 (gen/stagger (/ (:rate opts)))
                 (gen/nemesis (gen/phases (gen/sleep 5) (:generator pkg)))
                 (gen/time-limit (:time-limit opts)))]
    (merge tests/noop-test
           opts
           {:name      (str "cairn " (name workload-name) " "
                            (if (seq (:nemesis opts))
                              (str/join "," (map name (sort (:nemesis opts))))
                              "no-faults"))
            :pure-generators true
            :os        debian/os
            :db        db
            :client    (:client workload)
            :nemesis   (:nemesis pkg)
            :checker   (checker/compose
                         {:perf        (checker/perf {:nemeses (:perf pkg)})
                          :clock       (checker/clock-plot)
                          :stats       (checker/stats)
                          :exceptions  (checker/unhandled-exceptions)
                          :crash       (checker/log-file-pattern log-pattern "cairnd.log")
                          :convergence (nemesis/convergence-checker)
                          :workload    (:checker workload)})
            :generator (gen/phases
                         gen
                         (gen/log "Healing the cluster")
                         (gen/nemesis (:final-generator pkg))
                         (gen/log "Waiting for recovery")
                         (gen/sleep 10)
                         (gen/clients (:final-generator workload)))})))

(def cli-opts
  "Options beyond Jepsen's own (jepsen.cli/test-opt-spec)."
  [[nil "--package FILE" "The Debian package of Cairn to install on every node, as deploy/package.sh builds it (cairn_VERSION_amd64.deb, a path on the control node)."
    :validate [#(and (str/ends-with? % ".deb") (.isFile (io/file %)))
               "Must be a .deb file on this machine (deploy/package.sh BUILD_DIR makes one)."]]

   [nil "--concurrency NUMBER" "How many workers should we run? An integer, optionally followed by n (e.g. 4n) to multiply by the number of nodes. The watch workload needs at least 2n+2."
    :default  "4n"
    :validate [(partial re-find #"^\d+n?$") "Must be an integer, optionally followed by n."]]

   [nil "--election-timeout-ms MS" "cairnd's --election-timeout-ms."
    :default  1000
    :parse-fn parse-long
    :validate [pos? "Must be positive."]]

   [nil "--nemesis FAULTS" "Comma-separated faults: partition, kill, pause, clock, member, rolling; or none, mixed (partition,kill,pause), all."
    :default  #{}
    :parse-fn parse-nemesis
    :validate [(partial every? faults) (cli/one-of (concat faults (keys special-nemeses)))]]

   [nil "--nemesis-interval SECONDS" "Roughly how long between fault operations of each kind."
    :default  5
    :parse-fn read-string
    :validate [#(and (number? %) (pos? %)) "Must be a positive number."]]

   [nil "--ops-per-key NUM" "The register workload's operations per key."
    :default  200
    :parse-fn parse-long
    :validate [pos? "Must be positive."]]

   [nil "--partition-targets KINDS" "Comma-separated partition kinds: one, primaries, majority, majorities-ring, leader-deaf, leader-mute."
    :default  nemesis/partition-targets
    :parse-fn parse-partition-targets
    :validate [(partial every? (set nemesis/partition-targets))
               (cli/one-of nemesis/partition-targets)]]

   ["-r" "--rate HZ" "Approximate requests per second, over all workers."
    :default  100
    :parse-fn read-string
    :validate [#(and (number? %) (pos? %)) "Must be a positive number."]]

   [nil "--snapshot-threshold N" "cairnd's --snapshot-threshold: small, so that runs cross snapshots often."
    :default  2048
    :parse-fn parse-long
    :validate [pos? "Must be positive."]]])

(def test-cli-opts
  [["-w" "--workload NAME" "Which workload: register, set, append or watch."
    :default  :register
    :parse-fn keyword
    :validate [workloads (cli/one-of workloads)]]])

(def test-all-cli-opts
  [["-w" "--workload NAME" "Only this workload (default: every one)."
    :parse-fn keyword
    :validate [workloads (cli/one-of workloads)]]])

(def local-profile
  "test-all's fault sets: the local harness's short profile
  (jepsen/local/CMakeLists.txt), plus the faults only this suite has."
  [#{:partition}
   #{:kill}
   #{:pause}
   #{:partition :kill :pause}
   #{:rolling :kill}
   #{:member :kill}
   #{:clock}
   #{:partition :kill :pause :clock :member :rolling}])

(defn all-tests
  "test-all: every workload (or the one given) under every fault set of the
  profile (or the --nemesis given)."
  [opts]
  (for [nem (if (seq (:nemesis opts)) [(:nemesis opts)] local-profile)
        w   (if-let [w (:workload opts)] [w] (keys workloads))
        _   (range (:test-count opts))]
    (cairn-test (assoc opts :nemesis nem, :workload w))))

(defn check-package!
  [opts]
  (when-not (:package opts)
    (throw (ex-info "--package is required: the .deb that deploy/package.sh built" {})))
  opts)

(defn -main
  [& args]
  (cli/run! (merge (cli/single-test-cmd {:test-fn  (comp cairn-test check-package!)
                                         :opt-spec (into cli-opts test-cli-opts)})
                   (cli/test-all-cmd {:tests-fn (comp all-tests check-package!)
                                      :opt-spec (into cli-opts test-all-cli-opts)})
                   (cli/serve-cmd))
            args))
