(ns jepsen.cairn.db
  "Installs, starts, stops, kills, pauses and wipes cairnd on the nodes, and
  changes the cluster's membership for the membership nemesis.

  cairnd comes from the Debian package that deploy/package.sh builds from a
  build directory (cairn_<version>_amd64.deb): the test uploads it and
  installs it with apt, which pulls its runtime libraries from Debian, so the
  test runs exactly what an operator installs.

  Membership state. A node the membership nemesis removed is wiped and stays
  down until the nemesis adds it again (db/start! leaves it alone: started
  with its old --initial-cluster and an empty data directory it would
  bootstrap a cluster of its own). A node that was ever added that way keeps
  --join 1 in its flags, as docs/cairnd.md asks (\"Keep --join 1\")."
  (:require [clojure.string :as str]
            [clojure.tools.logging :refer [info warn]]
            [jepsen [control :as c]
                    [core :as jepsen]
                    [db :as db]
                    [util :as util :refer [meh]]]
            [jepsen.control.util :as cu]
            [jepsen.cairn [client :as client]
                          [support :as s]]))

(defn install!
  "Uploads the package and installs it with apt (dependencies from Debian)."
  [test node]
  (let [pkg (:package test)]
    (info node "installing" pkg)
    (c/su
      (c/exec :mkdir :-p s/dir)
      (c/upload pkg s/package-file)
      (try
        (c/exec :env "DEBIAN_FRONTEND=noninteractive" :apt-get :install :-y
                :--allow-downgrades :--reinstall s/package-file)
        (catch Exception e
          ; Stale package lists on a fresh node: refresh once, retry.
          (warn node "apt-get install failed; apt-get update and retry:" (.getMessage e))
          (c/exec :env "DEBIAN_FRONTEND=noninteractive" :apt-get :update)
          (c/exec :env "DEBIAN_FRONTEND=noninteractive" :apt-get :install :-y
                  :--allow-downgrades :--reinstall s/package-file)))
      (info node "installed" (c/exec s/binary :--version)))))

(defn flags
  "cairnd's command line for a node. join? starts it as a new member that
  waits to be added (docs/operations.md, \"Grow\")."
  [test node join?]
  (let [ip    (s/ip node)
        snap  (:snapshot-threshold test 2048)]
    [:--id            (s/node-id test node)
     :--data-dir      s/data-dir
     :--raft-addr     (str ip ":" s/raft-port)
     :--client-addr   (str ip ":" s/client-port)
     :--http-addr     (str ip ":" s/http-port)
     (if join?
       [:--join 1]
       [:--initial-cluster (s/initial-cluster test)])
     ; The watch workload keeps a few SSE streams open per node, and every
     ; other worker a keep-alive connection: room for all (docs/http.md).
     :--http-threads            64
     :--http-watch-streams-max  16
     ; Small snapshots, so that runs cross snapshot boundaries often, as the
     ; local harness does (jepsen/local/run.sh).
     :--snapshot-threshold      snap
     :--snapshot-trailing       (max 1 (quot snap 4))
     :--snapshot-log-percent    0
     :--election-timeout-ms     (:election-timeout-ms test 1000)]))

(defn start-cairnd!
  "Starts cairnd on the current node, as a daemon logging to s/log-file."
  [test node join?]
  (c/su
    (c/exec :mkdir :-p s/dir)
    (cu/start-daemon! {:logfile s/log-file
                       :pidfile s/pid-file
                       :chdir   s/dir}
                      s/binary
                      (flags test node join?))))

(defn kill-cairnd!
  "kill -9, then wait for the process to be gone."
  []
  (c/su (cu/stop-daemon! "cairnd" s/pid-file)))

(defn stop-cairnd!
  "SIGTERM, as an operator stops a node (docs/cairnd.md, \"Stopping\"): a
  leader hands over leadership first. Waits up to 20 s, then kills. Returns
  :stopped or :killed."
  []
  (c/su
    (let [pid (meh (str/trim (c/exec :cat s/pid-file)))]
      (if (str/blank? pid)
        :not-running
        (do (meh (c/exec :kill :-TERM pid))
            (loop [tries 200]
              (cond (not (cu/daemon-running? s/pid-file))
                    (do (meh (c/exec :rm :-f s/pid-file)) :stopped)

                    (zero? tries)
                    (do (kill-cairnd!) :killed)

                    :else
                    (do (Thread/sleep 100) (recur (dec tries))))))))))

(defn wipe!
  "Removes the node's data directory (the log stays, for the record)."
  []
  (c/su (c/exec :rm :-rf s/data-dir)))

(defn await-http
  "Waits until a node's HTTP API answers /v1/status (up to timeout-ms)."
  [node timeout-ms]
  (let [cl (client/open node {:timeout-ms 1000})
        deadline (+ (System/currentTimeMillis) timeout-ms)]
    (loop []
      (let [st (try (client/status cl) (catch Exception _ nil))]
        (cond st st
              (< deadline (System/currentTimeMillis))
              (throw (ex-info (str node ": cairnd's HTTP API did not answer in "
                                   timeout-ms " ms")
                              {:type ::setup-failed, :node node}))
              :else (do (Thread/sleep 250) (recur)))))))

(defn statuses
  "Every node's /v1/status, in parallel: a map of node to status, nil for a
  node that did not answer."
  [test]
  (->> (:nodes test)
       (util/real-pmap (fn [node]
                         [node (try (client/status (client/open node {:timeout-ms 2000}))
                                    (catch Exception _ nil))]))
       (into {})))

(defn leader
  "The node that leads in the highest term any node reports, or nil."
  [test]
  (->> (statuses test)
       (filter (fn [[_ st]] (= "leader" (:state st))))
       (sort-by (fn [[_ st]] (:term st)))
       last
       first))

(defn await-leader
  "Waits until some node leads (up to timeout-ms); returns it."
  [test timeout-ms]
  (let [deadline (+ (System/currentTimeMillis) timeout-ms)]
    (loop []
      (or (leader test)
          (if (< deadline (System/currentTimeMillis))
            (throw (ex-info "no leader" {:type ::setup-failed}))
            (do (Thread/sleep 250) (recur)))))))

(defrecord DB [state]
  ; state: an atom {:join #{nodes that start with --join 1}
  ;                 :removed #{nodes removed from the cluster and wiped}}
  db/DB
  (setup! [this test node]
    (install! test node)
    (db/start! this test node)
    (await-http node 60000)
    (jepsen/synchronize test)
    (await-leader test 60000))

  (teardown! [_ test node]
    (info node "tearing down cairnd")
    (kill-cairnd!)
    (c/su (c/exec :rm :-rf s/dir))
    (swap! state (fn [st] (-> st
                              (update :join disj node)
                              (update :removed disj node)))))

  db/Process
  (start! [_ test node]
    (if (contains? (:removed @state) node)
      ; Not a member: the membership nemesis starts it when it adds it.
      :removed
      (start-cairnd! test node (contains? (:join @state) node))))

  (kill! [_ test node]
    (kill-cairnd!))

  db/Pause
  (pause!  [_ test node] (c/su (cu/grepkill! :stop (str "^" s/binary))))
  (resume! [_ test node] (c/su (cu/grepkill! :cont (str "^" s/binary))))

  db/Primary
  (setup-primary! [_ test node])
  (primaries [_ test]
    (if-let [l (leader test)] [l] []))

  db/LogFiles
  (log-files [_ test node]
    {s/log-file "cairnd.log"}))

(defn db
  "A Cairn DB for the test."
  []
  (DB. (atom {:join #{}, :removed #{}})))

;; Membership changes, for jepsen.cairn.membership. Each returns a map that
;; says what happened, for the nemesis's completion.

(defn members
  "The configuration the leader reports: a map of node to role
  (\"voter\", \"standby\", \"spare\"), asked of any node that answers."
  [test]
  (some (fn [node]
          (try (let [m (client/members (client/open node {:timeout-ms 5000}))]
                 (when (seq (:members m))
                   (->> (:members m)
                        (keep (fn [{:keys [id role]}]
                                (when-let [n (s/id-node test id)] [n role])))
                        (into (sorted-map)))))
               (catch Exception _ nil)))
        (shuffle (:nodes test))))

(defn remove-member!
  "Removes node from the cluster through another member, waits for it to stop
  by itself (kills it after 20 s), and wipes its data directory. The node
  is then down until add-member! brings it back."
  [test node]
  (let [db      (:db test)
        id      (s/node-id test node)
        via     (rand-nth (vec (remove #{node} (:nodes test))))
        answer  (try (client/remove-member! (client/open via) id)
                     (catch clojure.lang.ExceptionInfo e
                       (if (client/error? e) (ex-data e) (throw e))))]
    (if (and (:type answer) (not= "not_found" (:code answer)))
      ; Refused (409 conflict, 503 ...), or no answer: nothing is assumed;
      ; the next membership op looks at the configuration again.
      {:node node, :removed? false, :error (select-keys answer [:status :code :message])}
      (do (swap! (:state db) update :removed conj node)
          (c/on-nodes test [node]
                      (fn [_ _]
                        (let [stopped (loop [tries 200]
                                        (cond (not (cu/daemon-running? s/pid-file)) :exited
                                              (zero? tries) (do (kill-cairnd!) :killed)
                                              :else (do (Thread/sleep 100) (recur (dec tries)))))]
                          (wipe!)
                          stopped)))
          {:node node, :removed? true, :via via}))))

(defn add-member!
  "Brings a removed node back: starts it empty with --join 1, adds it as a
  standby through another member, and promotes it once it has caught up
  (409 conflict while it catches up: retried for up to 90 s)."
  [test node]
  (let [db   (:db test)
        id   (s/node-id test node)
        via  (rand-nth (vec (remove #{node} (:nodes test))))
        cl   (client/open via)]
    (swap! (:state db) update :join conj node)
    (c/on-nodes test [node]
                (fn [_ _] (wipe!) (start-cairnd! test node true)))
    (await-http node 30000)
    (swap! (:state db) update :removed disj node)
    (let [added (try (client/add-member! cl id (s/member-address node))
                     (catch clojure.lang.ExceptionInfo e
                       (if (client/error? e) (ex-data e) (throw e))))
          deadline (+ (System/currentTimeMillis) 90000)]
      (loop []
        (let [r (try (client/set-member-role! cl id "voter")
                     (catch clojure.lang.ExceptionInfo e
                       (if (client/error? e) (ex-data e) (throw e))))]
          (cond (not (:type r))
                {:node node, :added? true, :role "voter", :via via}

                (< deadline (System/currentTimeMillis))
                {:node node, :added? (not (:type added)), :role :unknown
                 :error (select-keys r [:status :code :message])}

                :else (do (Thread/sleep 1000) (recur))))))))

(defn rolling-restart!
  "Restarts every member in turn with SIGTERM, followers first and the
  leader last, as an operator upgrades (docs/operations.md, \"Rolling
  restarts\"), waiting for each to answer again before the next. Returns
  each node's way out (:stopped, or :killed after 20 s)."
  [test]
  (let [l     (leader test)
        db    (:db test)
        order (concat (shuffle (remove #{l} (:nodes test))) (when l [l]))]
    (->> order
         (remove (:removed @(:state db)))
         (mapv (fn [node]
                 (let [how (-> (c/on-nodes test [node]
                                           (fn [_ _]
                                             (let [how (stop-cairnd!)]
                                               (db/start! db test node)
                                               how)))
                               (get node))]
                   (try (await-http node 30000) (catch Exception _ nil))
                   [node how]))))))
