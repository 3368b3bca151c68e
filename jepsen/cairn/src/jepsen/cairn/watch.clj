(ns jepsen.cairn.watch
  "Watches: every watcher's log must equal the committed history of its keys
  (jepsen.cairn.watch-log), and stale reads must show exactly the committed
  state at the revision they report. The same workload as the local
  harness's (jepsen/local/worker.c, \"The watch workload\"), over HTTP:
  watches are Server-Sent Events streams (GET /v1/watch, docs/http.md).

  Threads, in the order gen/reserve hands them out (thread i talks to node
  i mod N):

    1 past watcher      a prefix watch whose first stream starts at a revision
                        in the past (catch-up from history)
    N-1 prefix watchers one prefix watch per other node
    1 key watcher       a watch of one key
    N stale readers     GET ?stale=true of random keys on their own node
    the rest: writers   puts, deletes, and transactions of 2-4 puts and
                        deletes (one revision, several events)

  Keys are jepsen/watch/k00 .. k07 (fixed width, so that no key is a prefix
  of another). A retention policy set before the first write keeps every
  version of them.

  A :watch operation is one stream: it starts where the thread's previous
  stream ended (rev = the last revision it vouched for + 1: resumption from
  an explicit revision, every time), reads for 5 to 15 s and ends. Its
  completion holds the stream's log. An events update is a run of put and
  delete messages of the same revision (a transaction's events; only the
  last carries the revision as its SSE id, docs/http.md); it counts as
  received only once a message of another revision, or a progress, follows
  it, so a stream that breaks, or that the client stops, in the middle of a
  revision never vouches for half of it.

  At the end, in order: each watcher thread runs a :final-watch (a stream
  that must reach the revision a linearizable read returns when it begins,
  within 30 s, else the check reports it behind), then one :committed
  operation reads the final revision and every key's whole history."
  (:require [cheshire.core :as json]
            [clojure.string :as str]
            [clojure.tools.logging :refer [info warn]]
            [jepsen [checker :as checker]
                    [client :as client]
                    [generator :as gen]]
            [jepsen.cairn [client :as cc]
                          [support :as s]
                          [watch-log :as wl]])
  (:import (java.io BufferedReader InputStreamReader IOException)
           (java.net HttpURLConnection URL URLEncoder)
           (java.nio.charset StandardCharsets)))

(def prefix (str s/key-prefix "watch/"))
(def key-count 8)
(defn watch-key [i] (format "%sk%02d" prefix i))
(def all-keys (mapv watch-key (range key-count)))

(def retain-versions
  "Versions kept per key: far more than a run writes."
  1000000)

(def progress-ms 500)
(def final-watch-ms 30000)

;; Writers.

(defn- value
  "A unique value; now and then an empty one, or one with spaces, a tab, a
  percent sign and a newline."
  [process n]
  (case (mod n 29)
    13 ""
    19 (str "a b\t%" process "." n "\n")
    (str "v" process "." n)))

(defn- write!
  [conn process counter]
  (let [dice (rand-int 100)]
    (cond
      (< dice 55)
      (let [k (rand-nth all-keys), v (value process (swap! counter inc))]
        {:revision (:revision (cc/put! conn k v)), :ops [[:put k v]]})

      (< dice 70)
      (let [k (rand-nth all-keys)]
        {:revision (:revision (cc/delete! conn k)), :ops [[:del k]]})

      :else
      (let [n     (+ 2 (rand-int 3))
            k0    (rand-int key-count)
            ops   (mapv (fn [i]
                          (let [k (watch-key (mod (+ k0 i) key-count))]
                            (if (zero? (rand-int 4))
                              [:del k]
                              [:put k (value process (swap! counter inc))])))
                        (range n))
            r     (cc/txn! conn []
                           (map (fn [[f k v]]
                                  (if (= :put f)
                                    {:op "put", :key k, :value v}
                                    {:op "delete", :key k}))
                                ops))]
        {:revision (:revision r), :ops ops}))))

;; Server-Sent Events.

(defn- sse-url
  [node {:keys [prefix? range]} rev]
  (str (s/http-url node) "/v1/watch?"
       (if prefix? "prefix=" "key=")
       (URLEncoder/encode ^String range StandardCharsets/UTF_8)
       "&progress_ms=" progress-ms
       (when rev (str "&rev=" rev))))

(defn- kv-value
  "A KV's value as a string: nil for a deletion or no KV at all."
  [kv]
  (when (and kv (not (:deleted kv)))
    (case (:encoding kv)
      "base64" (String. (.decode (java.util.Base64/getDecoder) ^String (:value kv))
                        StandardCharsets/UTF_8)
      (:value kv ""))))

(defn- read-message
  "The next SSE message from r as {:id, :event, :data, :comment}, or nil at
  the end of the stream."
  [^BufferedReader r]
  (loop [m {}]
    (let [line (.readLine r)]
      (cond (nil? line)        nil
            (= "" line)        (if (empty? m) (recur m) m)
            (str/starts-with? line ":") (recur (update m :comment str (subs line 1)))
            :else
            (let [[field v] (str/split line #":" 2)
                  v (if (and v (str/starts-with? v " ")) (subs v 1) (or v ""))]
              (recur (case field
                       "id"    (assoc m :id (parse-long v))
                       "event" (assoc m :event v)
                       "data"  (assoc m :data v)
                       m)))))))

(defn stream!
  "Runs one watch stream on node from revision rev (nil: from now) until
  (done? log) holds after a confirmed update, or deadline (ms since the
  epoch) passes, or the stream ends. Returns the log:
  {:start S, :updates [...], :end reason}. A pending events update (not
  yet followed by another id) is left out."
  [node w rev deadline done?]
  (let [conn (doto ^HttpURLConnection (.openConnection (URL. (sse-url node w rev)))
               (.setConnectTimeout 1000)
               (.setReadTimeout (* 4 progress-ms))
               (.setRequestProperty "Accept" "text/event-stream"))]
    (try
      (let [status (.getResponseCode conn)]
        (if (not= 200 status)
          {:start nil, :updates [], :end [:http status]}
          (with-open [r (BufferedReader. (InputStreamReader. (.getInputStream conn)
                                                              StandardCharsets/UTF_8))]
            (loop [log {:start nil, :updates []}, pending nil]
              (let [m (try (read-message r) (catch IOException e {:error (str e)}))]
                (cond
                  (nil? m)      (assoc log :end :eof)
                  (:error m)    (assoc log :end [:io (:error m)])
                  (:comment m)  (recur (if-let [[_ n] (re-find #"watching from revision (\d+)" (:comment m))]
                                         (assoc log :start (parse-long n))
                                         log)
                                       pending)
                  (= "error" (:event m)) (assoc log :end [:error (:data m)])
                  :else
                  (let [data (json/parse-string (:data m) true)
                        same? (and pending (#{"put" "delete"} (:event m))
                                   (= (:revision data) (:rev pending)))
                        ; pending is confirmed by any message that does not continue it.
                        log  (if (and pending (not same?)) (update log :updates conj pending) log)]
                    (if (and (not same?) (or (done? log) (< deadline (System/currentTimeMillis))))
                      (assoc log :end :done)
                      (case (:event m)
                        ("put" "delete")
                        (let [ev {:rev (:mod_revision (:kv data)), :key (:key (:kv data)),
                                  :value (when (= "put" (:event m)) (kv-value (:kv data)))}]
                          (recur log (if same?
                                       (update pending :events conj ev)
                                       {:kind :events, :rev (:revision data), :events [ev]})))
                        "progress"
                        (recur (update log :updates conj {:kind :progress, :rev (:revision data)}) nil)
                        "snapshot"
                        (recur (update log :updates conj
                                       {:kind :snapshot, :rev (:revision data)
                                        :kvs (mapv (fn [kv] {:key (:key kv), :value (kv-value kv)})
                                                   (:kvs data))})
                                nil)
                        (recur log nil))))))))))
      (catch IOException e
        {:start nil, :updates [], :end [:io (str e)]})
      (finally (.disconnect conn)))))

;; The client.

(defn- last-vouched [log] (reduce max 0 (map :rev (:updates log))))

(defrecord Client [conn node known cursor incarnation counter]
  ; known:       an atom shared by every client: the newest revision an
  ;              acknowledged write reported
  ; cursor:      this client's last vouched revision (nil: never watched)
  ; incarnation: this client's streams so far (the watcher ids)
  ; counter:     this client's written values so far (with the process,
  ;              which no other client has, values are unique)
  client/Client
  (open! [this test node]
    (assoc this :conn (cc/open node), :node node,
           :cursor (atom nil), :incarnation (atom 0), :counter (atom 0)))

  (setup! [_ test]
    (cc/set-retention! conn prefix retain-versions))

  (teardown! [_ _])
  (close! [_ _] (cc/close conn))

  (invoke! [_ test op]
    (case (:f op)
      :write
      (cc/with-errors op :write
        (let [r (write! conn (:process op) counter)]
          (swap! known max (:revision r))
          (assoc op :type :ok, :value r)))

      :stale-read
      (cc/with-errors op :read
        (let [k     (rand-nth all-keys)
              kn    @known
              r     (cc/call! conn :get (cc/kv-path k)
                              {:query {:prefix "true", :limit 1, :stale "true"}, :timeout-ms 2000})
              kv    (first (:kvs r))]
          (assoc op :type :ok
                 :value {:reader node, :key k, :rev (:revision r), :known kn
                         :value (kv-value kv), :mod (or (:mod_revision kv) 0)})))

      (:watch :final-watch)
      (let [w      (:value op)
            final? (= :final-watch (:f op))
            target (when final?
                     (try (second (cc/range-all conn prefix)) (catch Exception _ nil)))
            rev    (cond @cursor (inc @cursor)
                         (:past? w) (max 1 (- @known 50))
                         :else nil)
            dur    (if final? final-watch-ms (+ 5000 (rand-int 10000)))
            log    (stream! node w rev (+ (System/currentTimeMillis) dur)
                            (if (and final? target)
                              (fn [log] (<= target (last-vouched log)))
                              (constantly false)))
            id     (str "p" (:process op) "." (swap! incarnation inc))]
        (if (nil? (:start log))
          (assoc op :type :fail, :error (:end log))
          (do (when (seq (:updates log)) (reset! cursor (last-vouched log)))
              (assoc op :type :ok
                     :value (merge w {:id id, :node node, :start (:start log), :requested rev
                                      :ended? (not final?), :target target
                                      :updates (:updates log), :end (:end log)})))))

      :committed
      (cc/with-errors op :read
        (let [final (second (cc/range-all conn prefix))
              hs    (mapv (fn [k] [k (cc/history conn k)]) all-keys)
              problems (for [[k h] hs
                             :let [vs (:versions h)]
                             :when (or (:more h) (and (seq vs) (not= 1 (:version (last vs)))))]
                         (str k ": history incomplete (more: " (:more h) ", oldest version "
                              (:version (last vs)) ")"))]
          (assoc op :type :ok
                 :value {:final    final
                         :problems (vec problems)
                         :events   (vec (for [[k h] hs, kv (:versions h)]
                                          {:rev (:mod_revision kv), :key k, :value (kv-value kv)}))}))))))

;; The checker.

(defn checker
  []
  (reify checker/Checker
    (check [_ test history _opts]
      (let [oks       (filter #(= :ok (:type %)) history)
            committed (:value (last (filter #(= :committed (:f %)) oks)))
            watchers  (->> oks
                           (filter #(#{:watch :final-watch} (:f %)))
                           (map (fn [op]
                                  (let [v (:value op)]
                                    {:id (:id v), :start (or (:start v) 0)
                                     :prefix? (:prefix? v), :range (:range v)
                                     :ended? (:ended? v), :target (:target v)
                                     :updates (:updates v)}))))
            reads     (->> oks (filter #(= :stale-read (:f %))) (map :value))]
        (cond
          (nil? committed)
          {:valid? false, :error "no :committed operation succeeded: nothing to check against"}

          (seq (:problems committed))
          {:valid? false, :error "the committed history is incomplete", :problems (:problems committed)}

          :else
          (wl/check committed watchers reads))))))

(defn workload
  [opts]
  (let [n     (count (:nodes opts))
        known (atom 0)
        watch (fn [w] (gen/repeat {:type :invoke, :f :watch, :value w}))
        pfx   {:prefix? true, :range prefix}
        key1  {:prefix? false, :range (watch-key 0)}
        final (fn [w] (gen/each-thread {:type :invoke, :f :final-watch, :value w}))]
    (when (< (:concurrency opts) (+ (* 2 n) 2))
      (throw (ex-info (str "the watch workload needs at least 2n+2 = " (+ (* 2 n) 2)
                           " threads (--concurrency): watchers, stale readers and writers")
                      {:concurrency (:concurrency opts)})))
    {:client          (Client. nil nil known nil nil nil)
     :checker         (checker)
     :generator       (gen/reserve 1       (watch (assoc pfx :past? true))
                                   (dec n) (watch pfx)
                                   1       (watch key1)
                                   n       (gen/stagger 0.05 (gen/repeat {:type :invoke, :f :stale-read}))
                                   (gen/repeat {:type :invoke, :f :write}))
     :final-generator (gen/phases
                        (gen/reserve 1 (final (assoc pfx :past? true))
                                     (dec n) (final pfx)
                                     1 (final key1)
                                     [])
                        (gen/once {:type :invoke, :f :committed}))}))
