(ns jepsen.cairn.client
  "A small client for Cairn's HTTP JSON API (docs/http.md; src/openapi.json is
  the precise form). One connection pool per Jepsen client, HTTP/1.1 (CivetWeb
  serves no HTTP/2), JSON by cheshire.

  Calls return the parsed body of a 2xx answer, with keys as keywords, and
  throw an ex-info of :type ::error otherwise. Its data is the error map that
  jepsen.cairn.errors classifies:

    {:type ::error, :status 503, :code \"no_leader\", :message \"...\",
     :method :put, :path \"/v1/kv/...\"}

  :code is the API's code for an HTTP error answer, or one of :connect (the
  request never left: connection refused, connect timeout), :timeout (sent,
  no answer within the timeout), :io (the connection broke) and :malformed
  (an answer we could not read). with-errors turns such an exception into
  the op's completion: :fail only when the operation certainly did not
  happen, :info otherwise (the table is in jepsen.cairn.errors and in the
  README, \"Errors\")."
  (:require [cheshire.core :as json]
            [clojure.string :as str]
            [jepsen.cairn.errors :as errors]
            [jepsen.cairn.support :as s])
  (:import (java.io IOException)
           (java.net ConnectException URLEncoder)
           (java.net.http HttpClient HttpClient$Version HttpConnectTimeoutException
                          HttpRequest HttpRequest$BodyPublishers HttpResponse
                          HttpResponse$BodyHandlers HttpTimeoutException)
           (java.nio.charset StandardCharsets)
           (java.time Duration)))

(def default-timeout-ms
  "How long a call waits for its answer. cairnd's gateway waits up to 5 s
  for a write that needs the leader (docs/http.md), so a little more."
  6000)

(def connect-timeout-ms 1000)

(defn open
  "A client of one node's HTTP API."
  ([node] (open node {}))
  ([node {:keys [timeout-ms]}]
   {:node       node
    :base       (s/http-url node)
    :timeout-ms (or timeout-ms default-timeout-ms)
    :http       (-> (HttpClient/newBuilder)
                    (.version HttpClient$Version/HTTP_1_1)
                    (.connectTimeout (Duration/ofMillis connect-timeout-ms))
                    (.build))}))

(defn close
  "Releases a client. java.net.http keeps no resource that needs closing
  before JDK 21; the connections go with the object."
  [_client]
  nil)

(defn encode-path
  "Percent-encodes a key for the path, byte by byte, keeping the slashes
  (docs/http.md: everything after /v1/kv/ is the key, decoded)."
  [k]
  (-> (URLEncoder/encode ^String k StandardCharsets/UTF_8)
      (str/replace "+" "%20")
      (str/replace "%2F" "/")))

(defn- query-string
  [query]
  (when (seq query)
    (->> query
         (keep (fn [[k v]]
                 (when (some? v)
                   (str (name k) "="
                        (URLEncoder/encode (str v) StandardCharsets/UTF_8)))))
         (str/join "&")
         (str "?"))))

(defn- error
  [method path m]
  (ex-info (str "cairn " (name method) " " path ": "
                (or (:status m) "no answer") " " (:code m) " " (:message m))
           (merge {:type ::error, :method method, :path path} m)))

(defn- parse
  [method path ^String body]
  (try (json/parse-string body true)
       (catch Exception e
         (throw (error method path {:status 200, :code :malformed,
                                    :message (.getMessage e)})))))

(defn call!
  "One request. method :get, :put, :post or :delete; path from /v1/...;
  opts :query (a map), :body (a map, sent as JSON), :headers, :timeout-ms."
  [client method path & [{:keys [query body timeout-ms headers]}]]
  (let [uri (str (:base client) path (query-string query))
        pub (if body
              (HttpRequest$BodyPublishers/ofString (json/generate-string body))
              (HttpRequest$BodyPublishers/noBody))
        b   (-> (HttpRequest/newBuilder (java.net.URI. uri))
                (.timeout (Duration/ofMillis (or timeout-ms (:timeout-ms client))))
                (.header "Content-Type" "application/json")
                (.method (str/upper-case (name method)) pub))
        _   (doseq [[k v] headers] (.header b (name k) (str v)))
        res (try (.send ^HttpClient (:http client) (.build b)
                        (HttpResponse$BodyHandlers/ofString))
                 ; Order matters: a connect timeout is a timeout too, but
                 ; the request never left.
                 (catch HttpConnectTimeoutException e
                   (throw (error method path {:code :connect, :message (str e)})))
                 (catch ConnectException e
                   (throw (error method path {:code :connect, :message (str e)})))
                 (catch HttpTimeoutException e
                   (throw (error method path {:code :timeout, :message (str e)})))
                 (catch IOException e
                   (throw (error method path {:code :io, :message (str e)}))))
        status (.statusCode ^HttpResponse res)
        text   (.body ^HttpResponse res)]
    (if (<= 200 status 299)
      (parse method path text)
      (let [e (try (:error (json/parse-string text true))
                   (catch Exception _ nil))]
        (throw (error method path {:status  status
                                   :code    (or (:code e) (str "http_" status))
                                   :message (or (:message e) text)}))))))

(defn error?
  "Is this throwable one of ours?"
  [t]
  (= ::error (:type (ex-data t))))

(defmacro with-errors
  "Evaluates body, the completion of op. When it throws a client error,
  completes op instead with :fail or :info as jepsen.cairn.errors/outcome
  decides for kind (:read or :write), and the error in :error."
  [op kind & body]
  `(try ~@body
        (catch clojure.lang.ExceptionInfo e#
          (if (error? e#)
            (let [d# (ex-data e#)]
              (assoc ~op
                     :type  (errors/outcome ~kind d#)
                     :error [(:code d#) (:status d#) (:message d#)]))
            (throw e#)))))

;; The key-value API.

(defn kv-path [k] (str "/v1/kv/" (encode-path k)))

(defn get-kv
  "The key's KV map (:value, :version, :mod_revision, ...) and the revision
  of the answer, as [kv revision]; kv nil when the key is absent. opts:
  :stale, :rev, :min-revision."
  [client k & [{:keys [stale rev min-revision]}]]
  (try (let [r (call! client :get (kv-path k)
                      {:query {:stale        (when stale "true")
                               :rev          rev
                               :min_revision min-revision}})]
         [(:kv r) (:revision r)])
       (catch clojure.lang.ExceptionInfo e
         (let [d (ex-data e)]
           (if (and (error? e) (= "not_found" (:code d)))
             ; A 404 answer carries no revision.
             [nil nil]
             (throw e))))))

(defn put!
  "Writes a value; returns {:revision R, :prev_kv KV-or-nil}. opts :cas, a
  mod_revision the key must have (0: absent), else 409 compare_failed."
  [client k v & [{:keys [cas]}]]
  (call! client :put (kv-path k) {:query {:cas cas}
                                  :body  {:value (str v), :encoding "utf8"}}))

(defn delete!
  "Deletes a key; returns {:deleted N, :revision R}."
  [client k]
  (call! client :delete (kv-path k)))

(defn range-all
  "Every live key under a prefix, at one revision: the first page is a
  linearizable read, the next pages read at its revision (rev=R), so the
  whole answer is the prefix's state at R. Returns [kvs R]."
  [client prefix]
  (loop [kvs [], after nil, rev nil]
    (let [r (call! client :get (kv-path prefix)
                   {:query {:prefix "true", :limit 1000, :after after, :rev rev}})
          kvs (into kvs (:kvs r))
          rev (or rev (:revision r))]
      (if (and (:more r) (seq (:kvs r)))
        (recur kvs (:key (peek (:kvs r))) rev)
        [kvs rev]))))

(defn txn!
  "A transaction (POST /v1/txn): compares, then the success or the failure
  operations. Returns {:succeeded bool, :revision R, :results [...]}."
  [client compares success & [failure]]
  (call! client :post "/v1/txn" {:body {:compare (vec compares)
                                        :success (vec success)
                                        :failure (vec (or failure []))}}))

(defn history
  "Every retained version of a key, newest first, deletions included, with
  values: {:versions [KV], :more bool, :revision R}; no versions when the
  key never existed."
  [client k]
  (try (call! client :get (str "/v1/history/" (encode-path k))
              {:query {:values "true"}})
       (catch clojure.lang.ExceptionInfo e
         (if (and (error? e) (= "not_found" (:code (ex-data e))))
           {:versions [], :more false}
           (throw e)))))

(defn set-retention!
  "Keeps up to n versions of every key under prefix (PUT /v1/retention)."
  [client prefix n]
  (call! client :put (str "/v1/retention/" (encode-path prefix))
         {:body {:versions n}}))

;; Status and membership.

(defn status
  "This node's status (GET /v1/status): :id, :state, :leader_id, :term,
  :commit_index, :applied_index, :state_hash, :members, :revision, ..."
  [client]
  (call! client :get "/v1/status" {:timeout-ms 2000}))

(defn members
  "The Raft configuration as the leader sees it (GET /v1/members)."
  [client]
  (call! client :get "/v1/members" {:timeout-ms 5000}))

(def member-timeout-ms
  "A membership change answers once its entry is committed, up to 60 s
  (docs/http.md, \"Members\")."
  65000)

(defn add-member!
  "Adds a node started with --join 1 as a standby."
  [client id address]
  (call! client :post "/v1/members" {:body {:id id, :address address}
                                     :timeout-ms member-timeout-ms}))

(defn set-member-role!
  "Promotes (\"voter\") or demotes (\"standby\") a member."
  [client id role]
  (call! client :post (str "/v1/members/" id) {:body {:role role}
                                               :timeout-ms member-timeout-ms}))

(defn remove-member!
  "Removes a member; it stops by itself."
  [client id]
  (call! client :delete (str "/v1/members/" id) {:timeout-ms member-timeout-ms}))
