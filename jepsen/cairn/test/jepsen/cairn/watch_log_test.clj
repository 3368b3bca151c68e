(ns jepsen.cairn.watch-log-test
  "The watch check must pass a faithful log and catch each kind of wrong
  one (CHAOS.md: the checker itself must be tested). Runs with Debian's
  clojure package: see jepsen/cairn/test/run_unit.clj."
  (:require [clojure.test :refer [deftest is testing]]
            [jepsen.cairn.watch-log :as wl]))

(def committed
  "Revisions 10..14 on keys a, b under w/, and x outside it: 12 is a
  transaction of two events, 13 a deletion."
  {:final  14
   :events [{:rev 10, :key "w/a", :value "1"}
            {:rev 11, :key "x",   :value "out"}
            {:rev 12, :key "w/a", :value "2"}
            {:rev 12, :key "w/b", :value "3"}
            {:rev 13, :key "w/a", :value nil}
            {:rev 14, :key "w/b", :value ""}]})

(defn ev [r k v] {:rev r, :key k, :value v})

(def good
  {:id "w1", :start 10, :prefix? true, :range "w/", :ended? false
   :updates [{:kind :events, :rev 10, :events [(ev 10 "w/a" "1")]}
             {:kind :progress, :rev 11}
             {:kind :events, :rev 12, :events [(ev 12 "w/a" "2") (ev 12 "w/b" "3")]}
             {:kind :events, :rev 13, :events [(ev 13 "w/a" nil)]}
             {:kind :events, :rev 14, :events [(ev 14 "w/b" "")]}]})

(defn kinds [r] (set (:anomaly-types r)))

(defn check1 [w] (wl/check committed [w] []))

(deftest faithful-logs-pass
  (is (:valid? (check1 good)))
  (testing "a key watcher sees only its key"
    (is (:valid? (check1 {:id "k", :start 10, :prefix? false, :range "w/b", :ended? false
                          :updates [{:kind :events, :rev 12, :events [(ev 12 "w/b" "3")]}
                                    {:kind :events, :rev 14, :events [(ev 14 "w/b" "")]}]}))))
  (testing "a snapshot excuses what came before it"
    (is (:valid? (check1 {:id "s", :start 5, :prefix? true, :range "w/", :ended? false
                          :updates [{:kind :snapshot, :rev 12, :kvs [{:key "w/a", :value "2"}
                                                                     {:key "w/b", :value "3"}]}
                                    {:kind :events, :rev 13, :events [(ev 13 "w/a" nil)]}
                                    {:kind :progress, :rev 13}
                                    {:kind :events, :rev 14, :events [(ev 14 "w/b" "")]}]}))))
  (testing "an ended watcher need not reach the final revision"
    (is (:valid? (check1 (assoc good :ended? true :updates (take 2 (:updates good))))))))

(deftest each-anomaly-is-caught
  (let [ups (:updates good)]
    (is (= #{:gap} (kinds (check1 (assoc good :updates (concat (take 2 ups) (drop 3 ups)))))))
    (is (contains? (kinds (check1 (assoc good :updates (concat ups [(nth ups 3)])))) :duplicate))
    (is (contains? (kinds (check1 (assoc good :updates [(nth ups 2) (nth ups 0) (nth ups 3) (nth ups 4)])))
                   :reorder))
    (is (contains? (kinds (check1 (assoc good :updates
                                         (concat (take 2 ups)
                                                 [{:kind :events, :rev 12, :events [(ev 12 "w/a" "2")]}
                                                  {:kind :events, :rev 12, :events [(ev 12 "w/b" "3")]}]
                                                 (drop 3 ups)))))
                   :split))
    (is (= #{:mismatch} (kinds (check1 (assoc-in good [:updates 0 :events 0 :value] "9")))))
    (testing "a transaction delivered in part"
      (is (= #{:mismatch} (kinds (check1 (assoc-in good [:updates 2 :events] [(ev 12 "w/a" "2")]))))))
    (is (contains? (kinds (check1 (assoc-in good [:updates 0 :rev] 9))) :bad-update))
    (is (= #{:behind} (kinds (check1 (assoc good :updates (take 4 ups))))))
    (is (= #{:behind} (kinds (check1 (assoc good :target 20)))))
    (is (= #{:snapshot}
           (kinds (check1 {:id "s", :start 5, :prefix? true, :range "w/", :ended? true
                           :updates [{:kind :snapshot, :rev 12, :kvs [{:key "w/a", :value "1"}
                                                                      {:key "w/b", :value "3"}]}]}))))))

(deftest stale-reads
  (let [ok  {:reader "n1", :rev 12, :key "w/a", :value "2", :mod 12, :known 14}
        del {:reader "n1", :rev 13, :key "w/a", :value nil, :mod 0, :known 14}]
    (is (:valid? (wl/check committed [] [ok del])))
    (is (= 2 (get-in (wl/check committed [] [ok del]) [:staleness "n1" :behind])))
    (is (= #{:stale-read} (kinds (wl/check committed [] [(assoc ok :value "1")]))))
    (is (= #{:stale-read} (kinds (wl/check committed [] [(assoc ok :mod 10)]))))
    (is (= #{:stale-read} (kinds (wl/check committed [] [(assoc del :value "2" :mod 12)]))))
    (is (= #{:stale-read} (kinds (wl/check committed [] [(assoc ok :rev 15)]))))))
