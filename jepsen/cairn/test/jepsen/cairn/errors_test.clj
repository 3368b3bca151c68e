(ns jepsen.cairn.errors-test
  "The error mapping, row by row the table in jepsen.cairn.errors."
  (:require [clojure.test :refer [deftest is]]
            [jepsen.cairn.errors :as e]))

(deftest reads-that-fail-are-fail
  (doseq [err [{:status 503, :code "unavailable"} {:status 500, :code "outcome_unknown"}
               {:status nil, :code :timeout} {:status nil, :code :io}]]
    (is (= :fail (e/outcome :read err)))))

(deftest writes-refused-before-proposing-are-fail
  (doseq [err [{:status nil, :code :connect}
               {:status 400, :code "bad_request"} {:status 400, :code "future_revision"}
               {:status 404, :code "not_found"} {:status 409, :code "compare_failed"}
               {:status 409, :code "conflict"} {:status 413, :code "too_large"}
               {:status 429, :code "overloaded"} {:status 503, :code "no_leader"}
               {:status 503, :code "unavailable"} {:status 418, :code "http_418"}]]
    (is (= :fail (e/outcome :write err)) (pr-str err))))

(deftest writes-of-unknown-outcome-are-info
  (doseq [err [{:status 503, :code "stale"}
               {:status 500, :code "outcome_unknown"} {:status 500, :code "internal"}
               {:status 502, :code "http_502"}
               {:status nil, :code :timeout} {:status nil, :code :io}
               {:status 200, :code :malformed}]]
    (is (= :info (e/outcome :write err)) (pr-str err))))
